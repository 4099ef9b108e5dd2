"""`fraudvae score`: chunked streaming, rejects with line numbers, atomic output, exit codes.

The command runs through the CLI's ``main`` in this process (``run``); a SIGKILL mid-job and
the progress bar on a terminal are tests of a real process, and start one.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tqdm import tqdm

from fraudvae import VAEDetector
from fraudvae.data.io import read_table
from fraudvae.datasets import make_transactions
from fraudvae.exceptions import DataFileError
from fraudvae.jobs.batch import _advance, _chunks, _prefetched, score_file
from tests.conftest import fraudvae_cli

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

FRAUDVAE = str(Path(sys.executable).with_name("fraudvae"))


@pytest.fixture(scope="module")
def transactions_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batch") / "tx.csv"
    make_transactions(3000, fraud_rate=0.01, random_state=5).to_csv(path, index=False)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return fraudvae_cli("score", *args)


def score_command(model_dir: Path, src: Path, out: Path, *extra: str) -> list[str]:
    """The ``fraudvae score`` command line, for tests that drive the process themselves."""
    return [FRAUDVAE, "score", "--model", str(model_dir), "--input", str(src), "--output", str(out), *extra]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_scores_equal_in_memory_scoring(model_dir: Path, transactions_csv: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"scored{suffix}"
    r = run(
        "--model",
        str(model_dir),
        "--input",
        str(transactions_csv),
        "--output",
        str(out),
        "--chunk-rows",
        "700",
        "--keep-columns",
        "transaction_id,amount",
        "--explain-top-k",
        "2",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("rows read 3000, scored 3000, flagged ")
    got = pd.read_parquet(out) if suffix == ".parquet" else read_table(out)
    assert list(got.columns) == [
        "transaction_id",
        "amount",
        "anomaly_score",
        "is_anomaly",
        "p_value",
        "feature_1",
        "contribution_1",
        "feature_2",
        "contribution_2",
    ]
    frame = read_table(transactions_csv)
    expected = VAEDetector.load(str(model_dir)).score_frame(frame, warn_extra=False, explain_top_k=2)
    assert list(got["transaction_id"]) == list(frame["transaction_id"])
    np.testing.assert_array_equal(got["anomaly_score"].to_numpy(), expected.anomaly_score)
    np.testing.assert_array_equal(got["is_anomaly"].to_numpy(), expected.is_anomaly)
    assert list(got["feature_1"]) == [t[0]["feature"] for t in expected.top_features(2)]
    assert not (tmp_path / f"scored{suffix}.rejects.csv").exists()


def test_bad_rows_go_to_rejects_with_line_and_reason(model_dir: Path, transactions_csv: Path, tmp_path: Path) -> None:
    lines = transactions_csv.read_text().splitlines()
    header = lines[0].split(",")
    amount, card = header.index("amount"), header.index("card_present")
    bad = lines[:]
    row = bad[10].split(",")
    row[amount] = "12,5x"  # shifts columns: an honest corruption
    bad[10] = ",".join(row)
    row = bad[2501].split(",")
    row[card] = "maybe"  # neither level of a binary column
    bad[2501] = ",".join(row)
    row = bad[1700].split(",")
    row[amount] = "abc"
    bad[1700] = ",".join(row)
    src = tmp_path / "bad.csv"
    src.write_text("\n".join(b for i, b in enumerate(bad) if i != 10) + "\n")  # drop the shifted row again
    out = tmp_path / "out.csv"
    r = run("--model", str(model_dir), "--input", str(src), "--output", str(out), "--chunk-rows", "1000", "--quiet")
    assert r.returncode == 1
    rejects = pd.read_csv(tmp_path / "out.csv.rejects.csv")
    assert list(rejects.columns) == ["line", "reason"]
    by_line = dict(zip(rejects["line"], rejects["reason"], strict=True))
    # Line numbers are 1-based file lines (the header is line 1); the dropped line shifts later ones by one.
    assert by_line[1700] == "amount: found 'abc', expected a finite number or null"
    assert by_line[2501] == "card_present: found 'maybe', expected one of [False, True] or null"
    assert not out.exists(), "with the default --max-reject-rate 0 the output is not written"
    assert "rejected" in r.stderr and "was not written" in r.stderr
    r = run(
        "--model", str(model_dir), "--input", str(src), "--output", str(out), "--max-reject-rate", "0.01", "--quiet"
    )
    assert r.returncode == 0, r.stderr
    assert "rejected 2" in r.stdout and len(pd.read_csv(out)) == 2997


def test_rerun_writes_the_same_bytes(model_dir: Path, transactions_csv: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (a, b):
        assert (
            run("--model", str(model_dir), "--input", str(transactions_csv), "--output", str(out), "--quiet").returncode
            == 0
        )
    assert a.read_bytes() == b.read_bytes()


def test_killed_job_leaves_no_partial_output(model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    rows = make_transactions(60_000, random_state=2)
    pd.concat([rows] * 5, ignore_index=True).to_csv(src, index=False)  # 300k rows: several seconds
    out = tmp_path / "out.csv"
    proc = subprocess.Popen(
        score_command(model_dir, src, out, "--chunk-rows", "2000", "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def written() -> bool:  # the first chunks are in the temporary output
        sizes = [p.stat().st_size for p in tmp_path.glob(".out.csv.*.part")]
        return any(size > 0 for size in sizes)

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not written():
        time.sleep(0.01)  # a poll for the condition, not a guess at how long the job takes
    assert written(), "the job never wrote its temporary output"
    assert proc.poll() is None, "the job finished before it could be killed; make the input larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert not out.exists()


def test_flat_memory_api(model_dir: Path, transactions_csv: Path, tmp_path: Path) -> None:
    summary = score_file(model_dir, transactions_csv, tmp_path / "o.parquet", chunk_rows=500)
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (3000, 3000, 0)
    assert pq.ParquetFile(tmp_path / "o.parquet").metadata.num_rows == 3000


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--input", "/nonexistent.csv"], "does not exist"),
        (["--chunk-rows", "0"], "--chunk-rows 0 is invalid"),
        (["--keep-columns", "nope"], "lacks column(s) ['nope']"),
    ],
)
def test_mistakes_end_in_one_line(
    model_dir: Path, transactions_csv: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    base = {"--model": str(model_dir), "--input": str(transactions_csv), "--output": str(tmp_path / "o.csv")}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    r = run(*[x for kv in base.items() for x in kv])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_prefetch_keeps_order_and_every_item() -> None:
    assert list(_prefetched(iter(range(50)))) == list(range(50))
    assert list(_prefetched(iter([]))) == []


def test_prefetch_raises_the_readers_error_in_the_consumer() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise DataFileError("cannot read near line 9")

    got = []
    with pytest.raises(DataFileError, match="near line 9"):
        for item in _prefetched(items()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_the_reader_when_the_consumer_stops() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    stream = _prefetched(items())
    assert next(stream) == 0
    stream.close()  # what a scoring error in the consumer's loop does
    assert not any(t.name == "fraudvae-reader" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3  # at most the item in hand, one queued, one being read


@pytest.mark.parametrize("rows", [2000, 60_000])  # in the first 1 MB block, and past it
def test_regression_malformed_line_gave_a_traceback(model_dir: Path, tmp_path: Path, rows: int) -> None:
    """A line with too few fields used to escape as a raw ``ArrowInvalid`` (then stopped the
    job). It is now a reject with its line number; with the default --max-reject-rate 0
    nothing is written but the rejects file, which says why."""
    header, body = make_transactions(2000, fraud_rate=0.0, random_state=6).to_csv(index=False).split("\n", 1)
    src = tmp_path / "broken.csv"
    src.write_text(header + "\n" + body * (rows // 2000) + "1,2,3\n")
    out = tmp_path / "out.parquet"
    summary = score_file(model_dir, src, out, chunk_rows=300)
    assert (summary.rows_read, summary.rows_rejected) == (rows + 1, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.csv", "out.parquet.rejects.csv"]
    rejects = pd.read_csv(tmp_path / "out.parquet.rejects.csv")
    assert rejects["line"].tolist() == [rows + 2]
    assert rejects["reason"].iloc[0].startswith("expected 12 fields, found 3")


@pytest.mark.parametrize("suffix", [".csv.gz", ".parquet"])
def test_progress_bar_on_a_terminal_shows_rate_and_eta(
    model_dir: Path, transactions_csv: Path, tmp_path: Path, suffix: str
) -> None:
    """On a real pseudo-terminal the bar counts rows against an estimated total (for the ETA)."""
    src = tmp_path / f"tx{suffix}"
    frame = pd.read_csv(transactions_csv)
    frame.to_parquet(src) if suffix == ".parquet" else frame.to_csv(src, index=False)
    controller, terminal = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, and tqdm would draw an empty bar in it.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(
        score_command(model_dir, src, tmp_path / "o.csv", "--chunk-rows", "500"),
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    )
    os.close(terminal)
    seen = b""
    while True:  # drain the terminal while the job runs, so it never blocks on a full buffer
        try:
            data = os.read(controller, 4096)
        except OSError:  # the job closed its end
            break
        if not data:
            break
        seen += data
    stdout, _ = proc.communicate(timeout=600)
    os.close(controller)
    assert proc.returncode == 0
    assert stdout.startswith("rows read 3000, scored 3000")
    text = seen.decode(errors="replace")
    assert re.search(r"\d+(\.\d+)?k?/\d+(\.\d+)?k? \[\d\d:\d\d<\d\d:\d\d", text), text[-500:]  # done/total [elapsed<eta
    assert "rows/s" in text
    assert "3.00k/3.00k" in text  # the estimate ends on the true total


def test_advance_estimates_the_total_from_the_share_read() -> None:
    bar = tqdm(file=io.StringIO(), disable=False)
    _advance(bar, 100, 0.25)
    assert (bar.n, bar.total) == (100, 400)
    _advance(bar, 100, 0.4)
    assert (bar.n, bar.total) == (200, 500)
    _advance(bar, 50, 1.0)
    assert (bar.n, bar.total) == (250, 250)


def test_regression_parquet_input_memory_grew_with_the_file(model_dir: Path, tmp_path: Path) -> None:
    """Arrow memory held while reading a Parquet file stays flat from the fifth chunk to the last.

    pyarrow's pre-buffer cache keeps every range it has read (up to 32 MB each) until the
    file is closed, so reading a file larger than that used to grow memory with the
    file. Arrow's allocation counter is exact: this is not a timing test.
    """
    rng = np.random.default_rng(0)
    base = make_transactions(2000, fraud_rate=0.0, random_state=7)
    frame = pd.concat([base] * 800, ignore_index=True)  # 1.6M rows
    for name in ("amount", "distance_from_home_km", "txn_count_24h"):  # incompressible: 13 MB each
        frame[name] = rng.uniform(0.0, 100.0, len(frame))
    src = tmp_path / "large.parquet"
    frame.to_parquet(src, row_group_size=40_000)
    assert src.stat().st_size > 40e6
    schema = VAEDetector.load(str(model_dir)).schema_
    held = []
    for chunk in _chunks(src, schema.names, {c.name: c.kind for c in schema.columns}, 40_000):
        del chunk
        held.append(pa.total_allocated_bytes())
    assert len(held) == 40
    assert max(held[30:]) <= max(held[4:8]) + (4 << 20), [h >> 20 for h in held]


def test_missing_where_never_missing_is_scored_not_rejected(
    model_dir: Path, transactions_csv: Path, tmp_path: Path
) -> None:
    """An empty cell in a column that training never saw empty: the row is scored (its own
    term names the column), the job does not fail open by rejecting it."""
    frame = pd.read_csv(transactions_csv).iloc[:50]
    frame.loc[7, "amount"] = None
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False)
    out = tmp_path / "out.csv"
    summary = score_file(model_dir, src, out, explain_top_k=3, keep_columns=["transaction_id"])
    assert (summary.rows_scored, summary.rows_rejected) == (50, 0)
    scored = pd.read_csv(out)
    assert "amount" in {scored.loc[7, f"feature_{k}"] for k in (1, 2, 3)}
