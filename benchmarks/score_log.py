"""What remembering every scored event costs (issue 38): ``/score`` throughput and the batch job's rows/s.

Same run, same model, alternating rounds so a drift of the shared machine falls on both sides:

- ``/score``, 1 worker, 4 concurrent clients, one event per request with an ``event_id``:
  ``FRAUDVAE_SCORE_LOG=true`` (the default: a SQLite insert of the event and its row values),
  and the log in a fleet's Redis (``FRAUDVAE_MONITOR_URL``, Debian's ``redis-server`` started
  here), against ``false``; requests/s, 7 rounds of 600 requests each way;
- the batch job on 200,000 generated rows: ``--score-log LOG.parquet --id-column`` against
  none; rows/s, 7 rounds each way.

Goal: each at least 0.90 of the run without the log. Writes the table to BENCHMARKS.md
(``score_log``).

Run:  .venv/bin/python benchmarks/score_log.py        (about 3 minutes on 2 idle cores)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import load
from benchmarks.markdown import replace_section
from benchmarks.service import send_each
from benchmarks.state import _redis
from fraudvae import VAEDetector
from fraudvae.datasets import LABEL_COLUMN, make_transactions
from fraudvae.jobs.batch import score_file

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 7


def _rows(frame: pd.DataFrame, start: int) -> list[dict]:
    out = []
    for i, r in enumerate(frame.to_dict(orient="records")):
        row = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else (None if v != v else v)) for k, v in r.items()}
        out.append(row | {"event_id": f"e{start + i}"})
    return out


def main() -> int:
    data = make_transactions(214_000, random_state=5)
    features = data.drop(columns=[LABEL_COLUMN, "transaction_id"])
    normal = features[data[LABEL_COLUMN] == 0]
    rps: dict[bool | str, list[float]] = {True: [], False: [], "redis": []}
    batch: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        VAEDetector(random_state=0).fit(normal.iloc[:10_000]).save(str(model))
        redis_proc, redis_url = _redis(Path(tmp))
        servers: dict[bool | str, tuple[object, str]] = {
            on: load.start(
                model,
                1,
                settings={"FRAUDVAE_SCORE_LOG": str(on).lower(), "FRAUDVAE_MONITOR_PATH": f"{tmp}/m{on}.sqlite"},
            )
            for on in (True, False)
        }
        servers["redis"] = load.start(model, 1, settings={"FRAUDVAE_MONITOR_URL": redis_url})
        try:
            for _, url in servers.values():
                asyncio.run(send_each(url, "/score", _rows(features.iloc[:100], 0), 4))  # warm-up
            for k in range(ROUNDS):
                for on in (True, False, "redis"):
                    rows = _rows(features.iloc[1000 * k : 1000 * k + 600], 10_000 * k)
                    rps[on].append(asyncio.run(send_each(servers[on][1], "/score", rows, 4))["rps"])
        finally:
            for proc, _ in servers.values():
                load.stop(proc)  # type: ignore[arg-type]
            redis_proc.terminate()
        big = features.iloc[14_000:].assign(tx=data["transaction_id"].iloc[14_000:].to_numpy())
        big.to_csv(f"{tmp}/big.csv", index=False)
        for _ in range(ROUNDS):
            for on in (True, False):
                extra = {"score_log": f"{tmp}/log.parquet", "id_column": "tx"} if on else {}
                started = time.perf_counter()
                summary = score_file(model, f"{tmp}/big.csv", f"{tmp}/out.parquet", **extra)  # type: ignore[arg-type]
                batch[on].append(summary.rows_scored / (time.perf_counter() - started))
    on_rps, off_rps = float(np.median(rps[True])), float(np.median(rps[False]))
    redis_rps = float(np.median(rps["redis"]))
    on_batch, off_batch = float(np.median(batch[True])), float(np.median(batch[False]))
    text = (
        "| path | without the log | with the log | ratio (goal >= 0.90) |\n|---|---:|---:|---:|\n"
        f"| `/score`, 1 worker, 4 clients (requests/s, median of {ROUNDS}) | {off_rps:,.0f} | {on_rps:,.0f} | "
        f"{on_rps / off_rps:.2f} |\n"
        f"| the same, the log in Redis (a fleet's) | {off_rps:,.0f} | {redis_rps:,.0f} | {redis_rps / off_rps:.2f} |\n"
        f"| batch job, 200,000 rows (rows/s, median of {ROUNDS}) | {off_batch:,.0f} | {on_batch:,.0f} | "
        f"{on_batch / off_batch:.2f} |\n"
    )
    print(text)
    replace_section(ROOT / "BENCHMARKS.md", "score_log", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
