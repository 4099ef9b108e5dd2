"""Hostile input on every way in: no 500, no dead process, no half-written output.

The stored corpus (``tests/corpus/hostile_cells.json``) holds the cases that broke a path
once; each cell goes into every column kind, in JSON and CSV bodies, batch files and
training files (the batch job and training through the CLI's ``main`` in this process, where
a crash fails the suite's worker as loudly; a server is a real process). Hypothesis adds raw bytes and random CSV on top (bounded here; longer runs
in ``benchmarks/fuzz.py``). Regression tests are named after the finding they pin.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from fraudvae_service.app import create_app
from fraudvae_service.settings import Settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudvae import VAEDetector
from fraudvae.data.inference import infer_schema
from fraudvae.data.io import read_table, write_table
from fraudvae.data.textparse import parse_numbers
from fraudvae.datasets import make_transactions
from fraudvae.exceptions import DataFileError, FraudVAEError
from fraudvae.jobs.batch import score_file
from tests.conftest import a_transaction, fraudvae_cli
from tests.test_service_process import start_server

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

FRAUDVAE = str(Path(sys.executable).with_name("fraudvae"))
CORPUS = json.loads((Path(__file__).parent / "corpus" / "hostile_cells.json").read_text())
CELLS: list[tuple[str, str]] = [(c["name"], c["text"]) for c in CORPUS["cells"]]
RAW: list[tuple[str, bytes]] = [(c["name"], bytes.fromhex(c["hex"])) for c in CORPUS["raw_csv"]]
#: One column of each kind in the demo schema.
KIND_COLUMNS = {"numeric": "amount", "categorical": "country", "datetime": "timestamp", "binary": "card_present"}
#: Examples per fuzz test in ``make test``; ``benchmarks/fuzz.py`` runs the same tests far longer.
FUZZ_EXAMPLES = int(os.environ.get("FRAUDVAE_FUZZ_EXAMPLES", "150"))


def fuzz_settings(share: float = 1.0) -> settings:
    return settings(
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        max_examples=max(1, int(FUZZ_EXAMPLES * share)),
    )


SETTINGS = fuzz_settings()


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    """CSV as a client would send it; text that is not valid Unicode goes out as the bytes it stands for."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8", "surrogatepass")


def with_cell(column: str, text: str) -> dict[str, Any]:
    return {**a_transaction(), column: text}


def assert_clean_error_or_score(response: httpx.Response | Any, column: str | None = None) -> None:
    assert response.status_code in (200, 413, 415, 422), response.text[:500]
    body = response.json()  # always a JSON document
    if response.status_code == 422:
        assert body["detail"], body
        if column is not None and isinstance(body["detail"], list):
            named = {d.get("field") for d in body["detail"]} | {None}
            assert column in named or any(column in (d.get("message") or "") for d in body["detail"]), body


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_dir=model_dir)), raise_server_exceptions=False) as c:  # type: ignore[call-arg]
        yield c


# ---------------------------------------------------------------------- the parser
@pytest.mark.parametrize(("name", "text"), CELLS)
def test_parse_numbers_survives_every_corpus_cell(name: str, text: str) -> None:
    numbers, bad = parse_numbers(np.array([text, "12.5"], dtype=object))
    assert numbers[1] == 12.5 and not bad[1]
    assert bad[0] or not np.isnan(numbers[0]), name


def test_parse_numbers_agrees_with_python_on_decimal_text() -> None:
    values = ["0", "-0.0", "1e308", "1.7976931348623157e308", "4.9e-324", ".5", "5.", "+3", " 7 ", "12.50", "1E5"]
    numbers, bad = parse_numbers(np.array(values, dtype=object))
    assert not bad.any()
    assert numbers.tolist() == [float(v) for v in values]


@given(st.text(max_size=40))
@SETTINGS
def test_parse_numbers_never_fails_on_any_text(text: str) -> None:
    numbers, bad = parse_numbers(np.array([text, None], dtype=object))
    assert np.isnan(numbers[1]) and not bad[1]
    boolean = text.strip().lower() in ("true", "false")
    if not bad[0] and not np.isnan(numbers[0]) and np.isfinite(numbers[0]) and not boolean:
        assert numbers[0] == float(text.strip())  # what it accepts, Python reads the same way


# ---------------------------------------------------------------------- regressions
def test_regression_csv_exponent_cell_killed_the_server(client: TestClient) -> None:
    """A 300-byte text/csv body with amount 1e77904855641443592 segfaulted the process
    (pandas' CSV float parser); now the cell is named in a 422, and a body whose column
    stays text (another cell unparseable) takes the same safe parser."""
    for extra in ([], [with_cell("amount", "abc")]):
        body = csv_bytes([with_cell("amount", "1e77904855641443592"), *extra])
        r = client.post("/batch_score", content=body, headers={"content-type": "text/csv"})
        assert r.status_code == 422, r.text
        first = r.json()["detail"][0]
        assert first["field"] == "amount" and first["row"] == 0
        assert "1e77904855641443592" in first["value"] and "float64 range" in first["value"]


def test_regression_hex_transaction_id_killed_train(tmp_path: Path) -> None:
    """``fraudvae train`` died with exit code 139 on hexadecimal ids (the type guess sent
    them to pd.to_numeric). The id column is now a category, flagged as an identifier."""
    frame = make_transactions(400, fraud_rate=0.0, random_state=3)
    frame["transaction_id"] = [f"{i:04x}e77904855641443592ded599c04f8d" for i in range(len(frame))]
    src = tmp_path / "export.csv"
    frame.to_csv(src, index=False)
    r = subprocess.run(
        [FRAUDVAE, "train", "--data", str(src), "--out", str(tmp_path / "m"), "--epochs", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "Column 'transaction_id' is left out of the model" in r.stderr  # an identifier, said in one line


def test_regression_batch_job_text_column_with_exponent_cell(model_dir: Path, tmp_path: Path) -> None:
    """When one cell of a chunk is unparseable the column stays text and goes to the
    schema's parser; with an exponent cell beside it that parser was pd.to_numeric."""
    rows = [a_transaction() for _ in range(5)]
    rows[1]["amount"], rows[3]["amount"] = "abc", "1e77904855641443592"
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes(rows))
    summary = score_file(model_dir, src, tmp_path / "out.csv", max_reject_rate=1.0)
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (5, 3, 2)
    rejects = pd.read_csv(tmp_path / "out.csv.rejects.csv")
    assert rejects["line"].tolist() == [3, 5]
    assert "1e77904855641443592" in rejects["reason"].iloc[1]


@pytest.mark.parametrize("literal", ["1e999", "-1e400"])
@pytest.mark.parametrize("path", ["/score", "/batch_score"])
def test_regression_overflowing_number_gave_500(client: TestClient, literal: str, path: str) -> None:
    """JSON parsing makes 1e999 infinite and the 422 body could not be written (500)."""
    text = json.dumps(a_transaction()).replace("42.5", literal)
    body = text if path == "/score" else f"[{text}]"
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    entry = r.json()["detail"][0]
    assert entry["field"] == "amount" and entry["expected"] == "a finite number or null"


@pytest.mark.parametrize("path", ["/score", "/batch_score"])
@pytest.mark.parametrize("text", ['"\\ud800"', '"x\\udfffy"'])
def test_regression_lone_surrogate_gave_500(client: TestClient, path: str, text: str) -> None:
    """A lone surrogate in a category was scored, then the response could not be serialized."""
    body = json.dumps(a_transaction()).replace('"US"', text)
    r = client.post(
        path, content=body if path == "/score" else f"[{body}]", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    entry = r.json()["detail"][0]
    assert entry["field"] == "country" and "not valid UTF-8" in entry["value"]


def test_regression_deeply_nested_json_gave_500(client: TestClient) -> None:
    """Found by this file's fuzzing: json.loads raises RecursionError past ~1,000 levels."""
    r = client.post("/batch_score", content="[" * 100_000, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "nested too deeply" in r.text


def test_regression_csv_field_count_line_numbers_disagreed(model_dir: Path, tmp_path: Path) -> None:
    """A line with the wrong number of fields stopped the job "near line 20002 ... Row #30001".
    Now it is rejected with its own line number, the rest is scored, and the lines of later
    rejects stay true (the parser skipped the bad line, the count does not)."""
    rows = make_transactions(31_000, fraud_rate=0.0, random_state=6)
    text = rows.to_csv(index=False).splitlines()
    text[30_000] = text[30_000] + ",surplus"  # line 30,001 of the file
    bad_amount = text[30_004].split(",")
    bad_amount[rows.columns.get_loc("amount")] = "not-a-number"
    text[30_004] = ",".join(bad_amount)  # line 30,005
    src = tmp_path / "in.csv"
    src.write_text("\n".join(text) + "\n")
    out = tmp_path / "out.parquet"
    summary = score_file(model_dir, src, out, chunk_rows=7_000, max_reject_rate=0.01, keep_columns=["transaction_id"])
    assert (summary.rows_read, summary.rows_rejected) == (31_000, 2)
    rejects = pd.read_csv(tmp_path / "out.parquet.rejects.csv")
    assert rejects["line"].tolist() == [30_001, 30_005]
    assert "expected 12 fields, found 13" in rejects["reason"].iloc[0]
    assert "amount" in rejects["reason"].iloc[1]
    scored = pq.read_table(out).to_pandas()
    assert len(scored) == 30_998
    missing = set(rows["transaction_id"]) - set(scored["transaction_id"])
    assert missing == {rows["transaction_id"].iloc[29_999], rows["transaction_id"].iloc[30_003]}


def test_regression_csv_field_count_in_a_request_names_the_line(client: TestClient) -> None:
    body = csv_bytes([a_transaction(), a_transaction()]) + b"1,2,3\n"
    r = client.post("/batch_score", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["message"].startswith("line 4: expected 10 fields, found 3")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # pyarrow's own report
def test_regression_malformed_line_not_utf8_gave_arrows_row_number(model_dir: Path, tmp_path: Path, client) -> None:
    """Found by benchmarks/fuzz.py: a line with the wrong number of fields that is also not
    UTF-8 cannot reach arrow's handler (pyarrow fails decoding it first). It stops the file
    with one line in our words and our line number; the service answers 422 naming it."""
    body = csv_bytes([a_transaction(), a_transaction()]) + b"\xff,2,3\n"
    src = tmp_path / "in.csv"
    src.write_bytes(body)
    with pytest.raises(DataFileError, match=r"line 4 has 3 fields, expected 10, and is not valid UTF-8"):
        score_file(model_dir, src, tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    r = client.post("/batch_score", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 422 and "line 4 has 3 fields" in r.text


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_regression_outputs_were_created_mode_0600(tmp_path: Path, umask: int) -> None:
    """mkstemp's 0600 survived the rename: a job's output was unreadable to its group."""
    script = (
        "import os, sys, pandas as pd\n"
        f"os.umask({umask})\n"
        "from fraudvae.data.io import write_table\n"
        "write_table(pd.DataFrame({'a': [1]}), sys.argv[1])\n"
    )
    target = tmp_path / "out.csv"
    subprocess.run([sys.executable, "-c", script, str(target)], check=True, timeout=120)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_batch_output_honours_the_umask(model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes([a_transaction()]))
    out = tmp_path / "out.csv"
    score_file(model_dir, src, out)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


# ---------------------------------------------------------------------- the corpus, in-process
@pytest.mark.parametrize("kind", list(KIND_COLUMNS))
@pytest.mark.parametrize(("name", "text"), CELLS)
def test_corpus_cell_in_every_body(client: TestClient, name: str, text: str, kind: str) -> None:
    column = KIND_COLUMNS[kind]
    row = with_cell(column, text)
    for path, content, media in (
        ("/score", json.dumps(row), "application/json"),
        ("/batch_score", json.dumps([row, a_transaction()]), "application/json"),
        ("/batch_score", csv_bytes([a_transaction(), row]), "text/csv"),
    ):
        r = client.post(path, content=content, headers={"content-type": media})
        assert_clean_error_or_score(r, column)


@pytest.mark.parametrize(("name", "raw"), RAW)
def test_raw_bytes_in_a_csv_cell(client: TestClient, name: str, raw: bytes) -> None:
    body = csv_bytes([a_transaction()]).replace(b",US,", b"," + raw + b",")
    r = client.post("/batch_score", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "country", r.text


@pytest.mark.parametrize(
    ("name", "transform"),
    [
        ("bom", lambda b: b"\xef\xbb\xbf" + b),
        ("cr_only_line_ends", lambda b: b.replace(b"\n", b"\r")),
        ("crlf_line_ends", lambda b: b.replace(b"\n", b"\r\n")),
        ("no_final_newline", lambda b: b.rstrip(b"\n")),
    ],
)
def test_line_ends_and_bom_are_read(client: TestClient, name: str, transform: Any) -> None:
    body = transform(csv_bytes([a_transaction(), a_transaction()]))
    r = client.post("/batch_score", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["summary"]["rows"] == 2


def test_one_megabyte_cell(client: TestClient) -> None:
    for column in ("amount", "country"):
        r = client.post(
            "/batch_score",
            content=csv_bytes([with_cell(column, "7" * (1 << 20))]),
            headers={"content-type": "text/csv"},
        )
        assert_clean_error_or_score(r, column)
        assert len(r.content) < 100_000  # nothing echoes the megabyte back


def test_duplicate_csv_header_is_named(client: TestClient) -> None:
    body = csv_bytes([a_transaction()]).replace(b"hour,", b"amount,", 1)
    r = client.post("/batch_score", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 422 and "more than once" in r.text and "amount" in r.text


# ---------------------------------------------------------------------- fuzzing the bodies
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # see the regression above
@given(body=st.binary(max_size=600), media=st.sampled_from(["text/csv", "application/json"]))
@SETTINGS
def test_fuzz_raw_bytes_to_batch_score(client: TestClient, body: bytes, media: str) -> None:
    assert_clean_error_or_score(client.post("/batch_score", content=body, headers={"content-type": media}))


def _cell_strategy() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([t for _, t in CELLS]),
        st.text(max_size=30),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(min_value=-(10**40), max_value=10**40).map(str),
        st.from_regex(r"[+-]?[0-9]{0,5}(\.[0-9]{0,5})?([eE][+-]?[0-9]{1,25})?", fullmatch=True),
    )


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # pyarrow, see above
@given(cells=st.dictionaries(st.sampled_from(sorted(a_transaction())), _cell_strategy(), max_size=4))
@SETTINGS
def test_fuzz_csv_cells_to_batch_score(client: TestClient, cells: dict[str, str]) -> None:
    row = {**a_transaction(), **cells}
    assert_clean_error_or_score(
        client.post("/batch_score", content=csv_bytes([row]), headers={"content-type": "text/csv"})
    )


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # pyarrow, see above
@given(cells=st.dictionaries(st.sampled_from(sorted(a_transaction())), _cell_strategy(), min_size=1, max_size=3))
@fuzz_settings(1 / 6)
def test_fuzz_batch_files(model_dir: Path, tmp_path_factory: pytest.TempPathFactory, cells: dict[str, str]) -> None:
    """CSV and Parquet (text columns) files with fuzzed cells: scored or rejected, never an error."""
    tmp = tmp_path_factory.mktemp("fuzz")
    rows = [a_transaction(), {**a_transaction(), **cells}, a_transaction()]
    (tmp / "in.csv").write_bytes(csv_bytes(rows))
    text_frame = pd.DataFrame(rows).astype(str)
    pq.write_table(
        pa.Table.from_pandas(text_frame.map(lambda v: v.encode("utf-8", "surrogatepass"))), tmp / "in.parquet"
    )
    for src in (tmp / "in.csv", tmp / "in.parquet"):
        summary = score_file(model_dir, src, tmp / "out.csv", max_reject_rate=1.0)
        # A bare "\r" in a cell is a line break: the file may hold more records than rows
        # were written, and each is scored or rejected, none lost.
        assert summary.rows_read >= 3 and summary.rows_scored + summary.rows_rejected == summary.rows_read
        assert summary.rows_scored >= 2


@given(cells=st.lists(_cell_strategy(), min_size=1, max_size=6))
@fuzz_settings(1 / 6)
def test_fuzz_training_files(tmp_path_factory: pytest.TempPathFactory, cells: list[str]) -> None:
    """A training file with a fuzzed column: read and typed, or refused with a library error."""
    tmp = tmp_path_factory.mktemp("fuzz_train")
    base = make_transactions(60, fraud_rate=0.0, random_state=1).drop(columns=["is_fraud", "transaction_id"])
    base["fuzzed"] = [cells[i % len(cells)] for i in range(len(base))]
    src = tmp / "train.csv"
    src.write_bytes(base.to_csv(index=False).encode("utf-8", "surrogatepass"))
    try:
        frame = read_table(src)
        infer_schema(frame)
    except FraudVAEError:
        pass


# ---------------------------------------------------------------------- real processes
@pytest.fixture(scope="module")
def live_server(model_dir: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, url = start_server(model_dir)
    yield proc, url
    proc.terminate()
    proc.communicate(timeout=30)


def test_crash_safety_real_server_survives_the_corpus(live_server: tuple[subprocess.Popen[str], str]) -> None:
    """Every corpus cell in every column kind and body, then raw bytes, against a real
    ``fraudvae serve``; after each request the process is alive and answers /health."""
    proc, url = live_server
    bodies: list[tuple[str, bytes, str]] = []
    for _, text in CELLS:
        for column in KIND_COLUMNS.values():
            row = with_cell(column, text)
            bodies.append(("/score", json.dumps(row).encode(), "application/json"))
            bodies.append(("/batch_score", csv_bytes([row]), "text/csv"))
    bodies += [
        ("/batch_score", csv_bytes([a_transaction()]).replace(b",US,", b"," + raw + b","), "text/csv") for _, raw in RAW
    ]
    bodies += [
        ("/batch_score", b"[" * 100_000, "application/json"),
        ("/batch_score", csv_bytes([with_cell("country", "7" * (1 << 20))]), "text/csv"),
        ("/batch_score", b"\x00" * 1000, "text/csv"),
    ]
    with httpx.Client(base_url=url, timeout=60) as http:
        for path, content, media in bodies:
            r = http.post(path, content=content, headers={"content-type": media})
            assert r.status_code < 500, (path, content[:200], r.text[:300])
            assert proc.poll() is None, "the server died"
            assert http.get("/health").status_code == 200


def score_args(model_dir: Path, src: Path, out: Path) -> list[str]:
    return ["score", "--model", str(model_dir), "--input", str(src), "--output", str(out)]


def _hostile_file(tmp_path: Path) -> tuple[Path, int]:
    rows = [a_transaction()]
    for _, text in CELLS:
        rows += [with_cell(column, text) for column in KIND_COLUMNS.values()]
    src = tmp_path / "hostile.csv"
    src.write_bytes(csv_bytes(rows) + b"1,2,3\n")
    return src, len(rows) + 1


@pytest.mark.parametrize("max_reject_rate", ["0", "1"])
def test_crash_safety_real_batch_job_on_the_corpus(model_dir: Path, tmp_path: Path, max_reject_rate: str) -> None:
    src, n = _hostile_file(tmp_path)
    out = tmp_path / "out.parquet"
    r = fraudvae_cli(*score_args(model_dir, src, out), "--max-reject-rate", max_reject_rate, "--quiet")
    assert "Traceback" not in r.stderr
    rejects = pd.read_csv(tmp_path / "out.parquet.rejects.csv")
    assert len(rejects) > 0 and rejects["line"].is_unique
    assert f"rows read {n}," in r.stdout
    if max_reject_rate == "0":
        assert r.returncode == 1 and not out.exists()
        assert len(r.stderr.strip().splitlines()) == 1
    else:
        assert r.returncode == 0
        assert len(pq.read_table(out)) + len(rejects) == n
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("invalid_utf8_everywhere", b"\xff\xfe\x00" * 5000),
        ("header_only", b"timestamp,amount\n"),
        ("empty", b""),
        ("one_megabyte_line", lambda: csv_bytes([with_cell("country", "x" * (3 << 20))])),
        ("duplicate_header", lambda: csv_bytes([a_transaction()]).replace(b"hour,", b"amount,", 1)),
    ],
)
def test_crash_safety_real_batch_job_on_broken_files(model_dir: Path, tmp_path: Path, name: str, content: Any) -> None:
    src = tmp_path / "broken.csv"
    src.write_bytes(content() if callable(content) else content)
    out = tmp_path / "out.csv"
    r = fraudvae_cli(*score_args(model_dir, src, out), "--quiet")
    assert r.returncode in (0, 1, 2), r.stderr
    assert "Traceback" not in r.stderr
    if r.returncode == 2:
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("fraudvae: error:")
        assert not out.exists()


def test_crash_safety_real_train_on_the_corpus(tmp_path: Path) -> None:
    base = make_transactions(300, fraud_rate=0.0, random_state=2).drop(columns=["is_fraud"])
    hostile = [t for _, t in CELLS]
    for column in ("amount", "merchant_category", "timestamp"):
        frame = base.copy().astype({column: object})
        frame.loc[: len(hostile) - 1, column] = hostile
        src = tmp_path / f"train_{column}.csv"
        src.write_bytes(frame.to_csv(index=False).encode("utf-8", "surrogatepass"))
        r = fraudvae_cli(
            "train", "--data", str(src), "--out", str(tmp_path / f"m_{column}"), "--epochs", "1", "--quiet"
        )
        assert r.returncode in (0, 2), (column, r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr
        if r.returncode == 2:
            assert r.stderr.strip().splitlines()[-1].startswith("fraudvae: error:")


def test_write_table_never_leaves_a_partial_file(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, "x"]})  # mixed types: arrow refuses it while writing Parquet
    with pytest.raises(pa.ArrowException):
        write_table(frame, tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


def test_hostile_parquet_binary_column_is_rejected_per_row(model_dir: Path, tmp_path: Path) -> None:
    rows = pd.DataFrame([a_transaction(), a_transaction()]).astype(str)
    table = pa.Table.from_pandas(rows.map(lambda v: v.encode()))
    country = pa.array([b"US", b"\xff\xfe"], pa.binary())
    table = table.set_column(table.column_names.index("country"), "country", country)
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    summary = score_file(model_dir, src, tmp_path / "out.csv", max_reject_rate=1.0)
    assert (summary.rows_scored, summary.rows_rejected) == (1, 1)
    assert "country" in pd.read_csv(tmp_path / "out.csv.rejects.csv")["reason"].iloc[0]


def test_score_file_refuses_unreadable_input_in_one_error(model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    src.write_bytes(b"PAR1" + b"\x00" * 100)
    with pytest.raises(DataFileError, match="Parquet"):
        score_file(model_dir, src, tmp_path / "out.csv")


def test_detector_scores_hostile_frames_without_crashing(fitted: VAEDetector) -> None:
    """The Python API takes the same parser: object columns of hostile text."""
    frame = pd.DataFrame([a_transaction() for _ in CELLS])
    frame["amount"] = [t for _, t in CELLS]
    result = fitted.score_frame(frame, errors="collect")
    assert len(result) + len(result.rejected) == len(CELLS)


def test_regression_malformed_line_in_a_request_was_reported_twice(client: TestClient) -> None:
    """The header was read by parsing the whole body with the same collector as the rows,
    so each malformed line of a text/csv body was listed twice (and the body parsed twice)."""
    body = csv_bytes([a_transaction(), a_transaction()]) + b"1,2,3\n" + csv_bytes([a_transaction()]).split(b"\n", 1)[1]
    r = client.post("/batch_score", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 422
    assert [d["message"][:7] for d in r.json()["detail"]] == ["line 4:"]


def test_regression_long_first_row_failed_the_batch_header_read(model_dir: Path, tmp_path: Path) -> None:
    """The batch job read the header with a 64 KB block and the rows with a 1 MiB one: a first
    row of 500 KB stopped the job ("straddling object") although the row read takes it."""
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes([with_cell("country", "x" * 500_000), a_transaction()]))
    summary = score_file(model_dir, src, tmp_path / "out.csv")
    assert (summary.rows_read, summary.rows_scored) == (2, 2)
