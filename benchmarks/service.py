"""HTTP service latency and throughput against a real `fraudvae serve` on loopback.

In one run: `/score` p50/p99 and requests/s at concurrency 1 and 16 beside `/health` of the
same app (the framework's floor), and `/batch_score` rows/s for 1,000-row batches beside
in-process scoring of the same rows. Request loops are bounded; only 127.0.0.1 is used.

Run: .venv/bin/python benchmarks/service.py   (about 2 minutes)
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np
import pandas as pd

from benchmarks.markdown import replace_section
from fraudvae import VAEDetector
from fraudvae.datasets import LABEL_COLUMN, make_transactions

ROOT = Path(__file__).resolve().parents[1]
FRAUDVAE = str(Path(sys.executable).with_name("fraudvae"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(url: str, method: str, payload: object, concurrency: int, total: int) -> dict[str, float]:
    latencies: list[float] = []
    queue = iter(range(total))
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                r = await (client.get(method) if payload is None else client.post(method, json=payload))
                latencies.append(time.perf_counter() - started)
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "rps": total / elapsed}


def main() -> int:
    data = make_transactions(12_000, random_state=3)
    features = data.drop(columns=[LABEL_COLUMN, "transaction_id"])
    normal = features[data[LABEL_COLUMN] == 0]
    rows = [
        {k: (v.isoformat() if isinstance(v, pd.Timestamp) else (None if v != v else v)) for k, v in r.items()}
        for r in features.iloc[:1000].to_dict(orient="records")
    ]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        det = VAEDetector(random_state=0).fit(normal.iloc[:10_000])
        det.save(str(model))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [FRAUDVAE, "serve", "--model", str(model), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            results = {}
            for conc, total in ((1, 400), (16, 1600)):
                asyncio.run(_load(url, "/health", None, conc, 50))  # warm-up
                results[("health", conc)] = asyncio.run(_load(url, "/health", None, conc, total))
                results[("score", conc)] = asyncio.run(_load(url, "/score", rows[0], conc, total))
            asyncio.run(_load(url, "/batch_score", rows, 1, 3))  # warm-up, as for the other endpoints
            batch = asyncio.run(_load(url, "/batch_score", rows, 1, 20))
            frame = pd.DataFrame(rows)
            det.score_frame(frame, explain_top_k=3)  # warm-up
            started = time.perf_counter()
            for _ in range(20):
                det.score_frame(frame, explain_top_k=3)
            in_process = 20 * 1000 / (time.perf_counter() - started)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    lines = [
        "| endpoint | concurrency | p50 ms | p99 ms | requests/s | p50 / `/health` p50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for conc in (1, 16):
        h, s = results[("health", conc)], results[("score", conc)]
        lines.append(f"| `/health` | {conc} | {h['p50']:.2f} | {h['p99']:.2f} | {h['rps']:,.0f} | 1.00 |")
        lines.append(
            f"| `/score` | {conc} | {s['p50']:.2f} | {s['p99']:.2f} | {s['rps']:,.0f} | {s['p50'] / h['p50']:.2f} |"
        )
    http_rows = batch["rps"] * 1000
    lines.append(
        f"\n`/batch_score`, 1,000-row JSON batches: {http_rows:,.0f} rows/s over HTTP vs {in_process:,.0f} rows/s "
        f"in process (same rows, same explain_top_k=3): ratio {http_rows / in_process:.2f} (target >= 0.5)."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(ROOT / "BENCHMARKS.md", "service", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
