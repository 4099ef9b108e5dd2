"""HTTP service latency and throughput against a real `fraudvae serve` on loopback.

In one run: `/score` p50/p99 and requests/s at concurrency 1 and 16 beside `/health` of the
same app (the framework's floor), and `/batch_score` rows/s for 1,000-row batches beside
in-process scoring of the same rows. Request loops are bounded; only 127.0.0.1 is used.

Also p99 and requests/s at concurrency 16 with 1 and 2 workers, and where a request's
server-side time goes, step by step, measured in process in the same run.

Run: .venv/bin/python benchmarks/service.py   (about 2 minutes)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np
import pandas as pd

from benchmarks import load
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector
from fraudvae.datasets import LABEL_COLUMN, make_transactions
from fraudvae.model.threads import torch_threads

ROOT = Path(__file__).resolve().parents[1]


async def _load(url: str, method: str, payload: object, concurrency: int, total: int) -> dict[str, float]:
    """``total`` requests of ``payload`` (``None``: GET) from ``concurrency`` clients."""
    return await send_each(url, method, [payload] * total, concurrency)


async def send_each(url: str, method: str, payloads: list[Any], concurrency: int) -> dict[str, float]:
    """One request per payload, in order, from ``concurrency`` clients: p50, p99 (ms), requests/s."""
    latencies: list[float] = []
    total = len(payloads)
    queue = iter(payloads)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker() -> None:
            for payload in queue:
                started = time.perf_counter()
                r = await (client.get(method) if payload is None else client.post(method, json=payload))
                latencies.append(time.perf_counter() - started)
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "rps": total / elapsed}


def _timed(fn: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of ``fn`` over ``repeat`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def _steps(model: Any, payload: object, size: int) -> dict[str, Callable[[], object]]:
    """The server-side steps of a request for ``payload``, each callable alone on its predecessor's output."""
    from fraudvae_service.bodies import json_response, parse_json, row_results

    def rows_to_frame(rows: list[Any], model: Any) -> pd.DataFrame:  # as score_rows builds it
        return pd.DataFrame.from_records([r.model_dump(by_alias=True) for r in rows], columns=model.frame_columns)

    det = model.detector
    body = json.dumps(payload).encode()
    parsed = parse_json(body)
    adapter = model.row_adapter if size == 1 else model.batch_adapter
    validated = adapter.validate_python(parsed)
    listed = [validated] if size == 1 else validated
    frame = rows_to_frame(listed, model)
    prepared = det.prepare(frame, warn_extra=False)
    result = det.score_prepared(prepared, explain_top_k=3)
    response = {"results": row_results(result, 3)}
    return {
        "parse JSON": lambda: parse_json(body),
        "validate (pydantic)": lambda: adapter.validate_python(parsed),
        "rows to a DataFrame": lambda: rows_to_frame(listed, model),
        "validate and encode (detector)": lambda: det.prepare(frame, warn_extra=False),
        "score (256-row padded chunks)": lambda: det.score_prepared(prepared),
        "score and explain top 3 (1 row: one pass with its variants)": lambda: det.score_prepared(
            prepared, explain_top_k=3
        ),
        "result rows": lambda: row_results(result, 3),
        "serialize JSON": lambda: json_response(response),
    }


def _pieces(model_dir: Path, rows: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """Server-side steps of a request, in process (one thread, as a worker): (step, 1 row ms, 1,000 rows ms)."""
    from fraudvae_service.app import load_model

    model = load_model(model_dir)
    with torch_threads(1):
        one = {name: _timed(fn, 300) for name, fn in _steps(model, rows[0], 1).items()}
        many = {name: _timed(fn, 20) for name, fn in _steps(model, rows, len(rows)).items()}
    return [(name, one[name], many[name]) for name in one]


def main() -> int:
    data = make_transactions(12_000, random_state=3)
    features = data.drop(columns=[LABEL_COLUMN, "transaction_id"])
    normal = features[data[LABEL_COLUMN] == 0]
    rows = [
        {k: (v.isoformat() if isinstance(v, pd.Timestamp) else (None if v != v else v)) for k, v in r.items()}
        for r in features.iloc[:1000].to_dict(orient="records")
    ]
    results: dict[tuple[str, int, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        det = VAEDetector(random_state=0).fit(normal.iloc[:10_000])
        det.save(str(model))
        for workers in (1, 2):
            proc, url = load.start(model, workers, quiet=False)
            try:
                for conc, total in ((1, 400), (16, 1600)):
                    if workers == 2 and conc == 1:
                        continue
                    asyncio.run(_load(url, "/health", None, conc, 50))  # warm-up
                    results[("health", conc, workers)] = asyncio.run(_load(url, "/health", None, conc, total))
                    results[("score", conc, workers)] = asyncio.run(_load(url, "/score", rows[0], conc, total))
                if workers == 1:
                    asyncio.run(_load(url, "/batch_score", rows, 1, 3))  # warm-up, as for the other endpoints
                    batch = asyncio.run(_load(url, "/batch_score", rows, 1, 20))
            finally:
                load.stop(proc)
        # The same server without explanations: what the counterfactual ranking costs a request.
        proc, url = load.start(model, 1, quiet=False, settings={"FRAUDVAE_EXPLAIN_TOP_K": "0"})
        try:
            asyncio.run(_load(url, "/score", rows[0], 1, 50))
            bare_health = asyncio.run(_load(url, "/health", None, 1, 400))
            bare = asyncio.run(_load(url, "/score", rows[0], 1, 400))
        finally:
            load.stop(proc)
        frame = pd.DataFrame(rows)
        det.score_frame(frame, explain_top_k=3)  # warm-up
        started = time.perf_counter()
        for _ in range(20):
            det.score_frame(frame, explain_top_k=3)
        in_process = 20 * 1000 / (time.perf_counter() - started)
        pieces = _pieces(model, rows)
    lines = [
        "| endpoint | workers | concurrency | p50 ms | p99 ms | requests/s | p50 / `/health` p50 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint, conc, workers in results:
        if endpoint != "score":
            continue
        h, s = results[("health", conc, workers)], results[("score", conc, workers)]
        for label, r in (("`/health`", h), ("`/score`", s)):
            lines.append(
                f"| {label} | {workers} | {conc} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps']:,.0f} | "
                f"{r['p50'] / h['p50']:.2f} |"
            )
    lines.append(
        f"| `/score`, `FRAUDVAE_EXPLAIN_TOP_K=0` | 1 | 1 | {bare['p50']:.2f} | {bare['p99']:.2f} | "
        f"{bare['rps']:,.0f} | {bare['p50'] / bare_health['p50']:.2f} |"
    )
    http_rows = batch["rps"] * 1000
    lines.append(
        f"\n`/batch_score`, 1,000-row JSON batches, 1 worker: {http_rows:,.0f} rows/s over HTTP vs "
        f"{in_process:,.0f} rows/s in process (same rows, same explain_top_k=3): ratio "
        f"{http_rows / in_process:.2f} (target >= 0.5)."
    )
    lines += [
        "",
        "Where a request's server-side time goes (each step alone, in process, one torch thread, median ms):",
        "",
        "| step | 1 row (`/score`) | 1,000 rows (`/batch_score`) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {one:.2f} | {many:.2f} |" for name, one, many in pieces]
    lines.append(
        f"\nOver HTTP, 1 worker, concurrency 1: `/score` p50 {results[('score', 1, 1)]['p50']:.2f} ms, "
        f"`/health` p50 {results[('health', 1, 1)]['p50']:.2f} ms; one 1,000-row batch "
        f"{1000 / batch['rps']:.1f} ms."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(ROOT / "BENCHMARKS.md", "service", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
