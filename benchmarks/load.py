"""Load and faults on loopback: a real ``fraudvae serve`` under mixed valid and hostile traffic.

64 concurrent clients (httpx, one connection each) send, for a fixed time, a mix of valid
``/score`` and ``/batch_score`` (JSON and CSV) requests, invalid ones (bad JSON, wrong
types, missing fields) and cells from the hostile corpus. Three scenarios, each on a fresh
server of the demo model:

- ``steady``: one worker, load only;
- ``reload``: one worker, ``POST /model/reload`` (admin key) half-way through;
- ``sigkill``: two workers (``--workers 2``), one of them killed with SIGKILL half-way; the
  supervisor starts a new one. Requests in flight on the killed worker lose their
  connection (counted as dropped); every other request must be answered.

Reported per scenario: requests, responses by status, dropped connections, requests/s and
p50/p99 latency. Targets: zero 5xx in every scenario, zero dropped connections under
``steady`` and ``reload``, and the service answering ``/health`` after the kill. The tests
(``tests/test_load.py``) run the same scenarios for a few seconds each.

Traffic goes to 127.0.0.1 only; every loop is bounded in time and stops by itself.

Run:  .venv/bin/python benchmarks/load.py [--seconds 120]   (writes a table into BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fraudvae.datasets import example_transaction

ROOT = Path(__file__).resolve().parents[1]
FRAUDVAE = str(Path(sys.executable).with_name("fraudvae"))
CORPUS = json.loads((ROOT / "tests" / "corpus" / "hostile_cells.json").read_text())
ADMIN_KEY = "load-admin"


def _csv(rows: list[dict[str, Any]]) -> bytes:
    header = ",".join(rows[0])
    lines = [",".join(str(v) for v in r.values()) for r in rows]
    return ("\n".join([header, *lines]) + "\n").encode("utf-8", "surrogatepass")


def request_mix(rng: random.Random) -> tuple[str, str, bytes, str]:
    """(kind, path, body, content type) of one request of the mix."""
    roll = rng.random()
    row: dict[str, Any] = example_transaction()
    row["amount"] = round(rng.uniform(1, 500), 2)
    if roll < 0.45:
        return "score", "/score", json.dumps(row).encode(), "application/json"
    if roll < 0.60:
        rows = [{**row, "amount": round(rng.uniform(1, 500), 2)} for _ in range(20)]
        return "batch_json", "/batch_score", json.dumps(rows).encode(), "application/json"
    if roll < 0.70:
        return "batch_csv", "/batch_score", _csv([row] * 20), "text/csv"
    if roll < 0.78:
        return "bad_json", "/score", b'{"amount": 12,', "application/json"
    if roll < 0.86:
        return "bad_type", "/score", json.dumps({**row, "amount": "twelve"}).encode(), "application/json"
    if roll < 0.92:
        missing = dict(row)
        missing.pop("country")
        return "missing_field", "/score", json.dumps(missing).encode(), "application/json"
    cell = rng.choice(CORPUS["cells"])["text"]
    column = rng.choice(["amount", "country", "timestamp", "card_present"])
    return "hostile_csv", "/batch_score", _csv([{**row, column: cell}]), "text/csv"


@dataclass
class LoadResult:
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    events: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.dropped.values())

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    def row(self, name: str) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        dropped = sum(self.dropped.values())
        return (
            f"| {name} | {self.requests} | {statuses} | {dropped} | {self.requests / self.seconds:.0f} "
            f"| {self.percentile(50):.1f} | {self.percentile(99):.1f} |"
        )


async def _run(url: str, seconds: float, concurrency: int, at_half: Callable[[], Any] | None, seed: int) -> LoadResult:
    result = LoadResult()
    deadline = time.monotonic() + seconds
    half = time.monotonic() + seconds / 2
    fired = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while time.monotonic() < deadline:
                kind, path, body, media = request_mix(rng)
                started = time.perf_counter()
                try:
                    r = await client.post(path, content=body, headers={"content-type": media})
                except httpx.TransportError as exc:
                    result.dropped[type(exc).__name__] += 1
                    continue
                result.latencies.append(time.perf_counter() - started)
                result.statuses[r.status_code] += 1
                result.by_kind[kind] += 1
                if at_half is not None and not fired.is_set() and time.monotonic() >= half:
                    fired.set()
                    outcome = await asyncio.to_thread(at_half)
                    result.events.append(str(outcome))

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        result.seconds = time.monotonic() - started
    return result


def run_load(
    url: str, seconds: float, concurrency: int = 64, at_half: Callable[[], Any] | None = None, seed: int = 0
) -> LoadResult:
    """Drive the mix against ``url`` for ``seconds``; ``at_half`` runs once, half-way through."""
    return asyncio.run(_run(url, seconds, concurrency, at_half, seed))


# ---------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    model_dir: Path,
    workers: int = 1,
    *,
    prefix: Sequence[str] = (),
    quiet: bool = True,
    settings: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """A ready ``fraudvae serve`` on a free loopback port, and its URL.

    ``prefix`` runs it under another command (``taskset -c 0``); ``quiet=False`` keeps the
    default log level (access lines), as a deployment runs it; ``settings`` are extra
    ``FRAUDVAE_*`` environment variables.
    """
    port = free_port()
    env = {**os.environ, "FRAUDVAE_ADMIN_KEY": ADMIN_KEY, **(settings or {})}
    if quiet:
        env["FRAUDVAE_LOG_LEVEL"] = "warning"
    proc = subprocess.Popen(
        [*prefix, FRAUDVAE, "serve", "--model", str(model_dir), "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200 and len(worker_pids(proc.pid)) >= workers:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready within 120 s")


def worker_pids(master: int) -> list[int]:
    """uvicorn's worker processes under ``master`` (its multiprocessing children, not helpers).

    With one worker uvicorn serves in the master itself.
    """
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    pids = []
    for pid in map(int, children):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"multiprocessing" in cmd and b"resource_tracker" not in cmd:
            pids.append(pid)
    return pids or [master]


def reload(url: str) -> int:
    return httpx.post(f"{url}/model/reload", headers={"X-API-Key": ADMIN_KEY}, timeout=120).status_code


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def demo_model(where: Path) -> Path:
    from fraudvae import VAEDetector
    from fraudvae.datasets import make_transactions

    frame = make_transactions(6000, fraud_rate=0.0, random_state=0).drop(columns=["is_fraud", "transaction_id"])
    path = where / "model"
    VAEDetector(random_state=0, max_epochs=25).fit(frame).save(str(path))
    return path


def scenario(name: str, model_dir: Path, seconds: float, concurrency: int) -> LoadResult:
    proc, url = start(model_dir, workers=2 if name == "sigkill" else 1)
    try:
        at_half: Callable[[], Any] | None = None
        if name == "reload":
            at_half = lambda: f"reload -> {reload(url)}"  # noqa: E731
        elif name == "sigkill":
            victim = worker_pids(proc.pid)[0]

            def at_half() -> str:
                os.kill(victim, signal.SIGKILL)
                return f"SIGKILL worker {victim}"

        result = run_load(url, seconds, concurrency, at_half)
        result.events.append(f"/health after: {httpx.get(f'{url}/health', timeout=10).status_code}")
        return result
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--scenarios", default="steady,reload,sigkill", help="comma-separated subset to run")
    args = parser.parse_args()
    from benchmarks.markdown import replace_section

    with tempfile.TemporaryDirectory() as tmp:
        model = demo_model(Path(tmp))
        rows = []
        for name in args.scenarios.split(","):
            r = scenario(name, model, args.seconds, args.concurrency)
            print(r.row(name), r.events, dict(r.dropped), flush=True)
            rows.append(r.row(name) + f" {'; '.join(r.events)} |")
    table = "\n".join(
        [
            f"Each scenario {args.seconds:.0f} s at concurrency {args.concurrency} on loopback, demo model, "
            "the mix of `benchmarks/load.py` (45% /score, 25% batches of 20 rows as JSON or CSV, 22% invalid "
            "requests, 8% hostile corpus cells); latency in ms over answered requests.",
            "",
            "| scenario | requests | responses by status | dropped connections | requests/s | p50 ms | p99 ms | events |",
            "|---|---:|---|---:|---:|---:|---:|---|",
            *rows,
        ]
    )
    replace_section(ROOT / "BENCHMARKS.md", "load", table)


if __name__ == "__main__":
    main()
