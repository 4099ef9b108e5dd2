"""Online state: what keeping each entity's history costs ``/score``, and how big the state grows.

In one run on the same machine, one ``fraudvae serve`` at a time on loopback:

* ``/score`` p50 / p99 and requests/s at concurrency 1 and 16 for the **stateless** model (the
  same raw card events, trained without the spec: the request carries its columns and nothing
  is read or written) and for the spec model with **SQLite** and with **Redis** state (the
  request carries the raw event; its features come from the store, and it is recorded);
  and a 2-worker server with SQLite state at concurrency 16 (three runs: the median and the range);
* the server's peak memory (``VmHWM`` of each worker);
* the state's size per million events: the entity records after ``fraudvae state load`` of
  1,000,000 demo events (SQLite file bytes, Redis ``used_memory``), and the event-id log that
  retries are answered from (bytes per recorded event, measured on 50,000 events).

Each event is sent once, in time order (concurrency 16 keeps no entity order: some events
arrive late, which costs the same). The Redis server is Debian's ``redis-server``, started here.

Run: .venv/bin/python benchmarks/state.py   (about 8 minutes; writes BENCHMARKS.md's "state" section)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from benchmarks import load
from benchmarks.markdown import replace_section
from benchmarks.service import send_each
from fraudvae.datasets.events import DEMO_FEATURE_SPEC, make_card_events
from fraudvae.jobs.workflows import train_file

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_HISTORY = 10_000, 10_000


def _peak_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    peaks = []
    for pid in load.worker_pids(proc.pid):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks) if peaks else float("nan")


def _redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = load.free_port()
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(300):
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def _fleet(work: Path) -> dict[str, Any]:
    """The two models and the events: history for the warm start, then fresh events to send."""
    events = make_card_events(N_TRAIN + N_HISTORY + 20_000, random_state=11).sort_values("timestamp", kind="stable")
    events = events.reset_index(drop=True)
    events.iloc[:N_TRAIN].to_csv(work / "train.csv", index=False)
    (work / "features.toml").write_text(DEMO_FEATURE_SPEC)
    common = {"label_column": "is_fraud", "normal_value": "0", "time_column": "timestamp", "compare": False}
    common |= {"random_state": 0, "log": lambda line: None}
    train_file(
        work / "train.csv", work / "spec", drop_columns=["transaction_id"], features=work / "features.toml", **common
    )
    train_file(work / "train.csv", work / "raw", drop_columns=["transaction_id", "card_id", "device_id"], **common)
    history = events.iloc[N_TRAIN : N_TRAIN + N_HISTORY].drop(columns=["is_fraud"])
    history.to_csv(work / "history.csv", index=False)
    fresh = events.iloc[N_TRAIN + N_HISTORY :].drop(columns=["is_fraud"])
    spec_bodies = json.loads(fresh.to_json(orient="records", date_format="iso"))
    raw_bodies = [
        {k: v for k, v in b.items() if k not in ("card_id", "device_id", "transaction_id")} for b in spec_bodies
    ]
    return {"spec_bodies": spec_bodies, "raw_bodies": raw_bodies}


def _serve_and_send(
    model: Path, bodies: list[dict[str, Any]], workers: int, settings: dict[str, str], plan: list[tuple[int, int]]
) -> tuple[dict[int, dict[str, float]], float]:
    proc, url = load.start(model, workers, settings=settings)
    out: dict[int, dict[str, float]] = {}
    at = 0
    try:
        asyncio.run(send_each(url, "/score", bodies[at : at + 100], 1))  # warm-up (recorded like the rest)
        at += 100
        for concurrency, n in plan:
            out[concurrency] = asyncio.run(send_each(url, "/score", bodies[at : at + n], concurrency))
            at += n
        rss = _peak_rss_mb(proc)
    finally:
        load.stop(proc)
    return out, rss


def _size_per_million(work: Path, redis_url: str) -> dict[str, float]:
    """Entity records after loading 1,000,000 events, in SQLite and in Redis; the event-id log per event."""
    import redis

    from fraudvae import VAEDetector
    from fraudvae.jobs.state_job import load_state
    from fraudvae.state import open_store
    from fraudvae.state.online import OnlineScorer

    million = make_card_events(1_000_000, random_state=12).sort_values("timestamp", kind="stable")
    million.drop(columns=["is_fraud"]).to_csv(work / "million.csv", index=False)
    out: dict[str, float] = {}
    started = time.perf_counter()
    sqlite = load_state(work / "spec", work / "million.csv", f"sqlite:///{work / 'million.sqlite'}")
    out["load_s_sqlite"] = time.perf_counter() - started
    out["entities"] = sqlite["entities"]
    for suffix in ("", "-wal"):
        path = work / f"million.sqlite{suffix}"
        out["sqlite_mb"] = out.get("sqlite_mb", 0.0) + (path.stat().st_size / 1e6 if path.exists() else 0.0)
    client = redis.Redis.from_url(redis_url)
    before = int(client.info("memory")["used_memory"])
    started = time.perf_counter()
    load_state(work / "spec", work / "million.csv", redis_url + "?prefix=million")
    out["load_s_redis"] = time.perf_counter() - started
    out["redis_mb"] = (int(client.info("memory")["used_memory"]) - before) / 1e6
    # The event-id log: 50,000 events recorded with ids through the scorer, in 500-event requests.
    store = open_store(f"sqlite:///{work / 'events.sqlite'}")
    scorer = OnlineScorer(VAEDetector.load(str(work / "spec")), store)
    frame = million.drop(columns=["is_fraud"]).iloc[:50_000]
    size0 = (work / "events.sqlite").stat().st_size
    for start in range(0, len(frame), 500):
        part = frame.iloc[start : start + 500]
        scorer.features(part, part["transaction_id"].astype(str).tolist())
    store.close()
    grown = sum(p.stat().st_size for p in work.glob("events.sqlite*")) - size0
    out["event_log_bytes_per_event"] = grown / len(frame)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fleet = _fleet(work)
        redis_proc, redis_url = _redis(work)
        try:
            plan = [(1, 1000), (16, 3000)]
            ids = {"FRAUDVAE_EVENT_ID_COLUMN": "transaction_id"}
            rows: list[tuple[str, int, dict[int, dict[str, float]], float]] = []
            res, rss = _serve_and_send(work / "raw", fleet["raw_bodies"], 1, {}, plan)
            rows.append(("stateless (raw columns, no spec)", 1, res, rss))
            for kind, url in (("SQLite", f"sqlite:///{work / 'state.sqlite'}"), ("Redis", redis_url)):
                subprocess.run(
                    [str(Path(sys.executable).with_name("fraudvae")), "state", "load", "--model", str(work / "spec"),
                     "--data", str(work / "history.csv"), "--state", url, "--quiet"],
                    check=True, stdout=subprocess.DEVNULL,
                )  # fmt: skip
                res, rss = _serve_and_send(
                    work / "spec", fleet["spec_bodies"], 1, {"FRAUDVAE_STATE_URL": url, **ids}, plan
                )
                rows.append((f"spec, {kind} state", 1, res, rss))
            # Two workers share the listening socket and each takes the connections it accepts
            # first, so how the 16 clients split between them varies from run to run: 3 runs.
            runs = []
            for k in range(3):
                two = f"sqlite:///{work / f'state2-{k}.sqlite'}"
                events = fleet["spec_bodies"][5000 + 4000 * k :]
                runs.append(_serve_and_send(work / "spec", events, 2, {"FRAUDVAE_STATE_URL": two, **ids}, [(16, 4000)]))
            runs.sort(key=lambda run: run[0][16]["rps"])
            res, rss = runs[1]  # the median run
            spread = f"{runs[0][0][16]['rps']:,.0f}-{runs[2][0][16]['rps']:,.0f}"
            rows.append(("spec, SQLite state (median of 3 runs)", 2, res, rss))
            print(json.dumps([(label, w, res, rss) for label, w, res, rss in rows]), flush=True)
            size = _size_per_million(work, redis_url)
        finally:
            redis_proc.terminate()
            redis_proc.wait(timeout=30)
    base = rows[0][2]
    lines = [
        "| model | workers | concurrency | p50 ms | p99 ms | requests/s | p50 - stateless |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, workers, res, _ in rows:
        for conc, r in res.items():
            extra = f"{r['p50'] - base[conc]['p50']:+.2f} ms" if workers == 1 and label != rows[0][0] else ""
            lines.append(
                f"| {label} | {workers} | {conc} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps']:,.0f} | {extra} |"
            )
    sqlite_c1 = rows[1][2][1]["p50"] - base[1]["p50"]
    log_mb = size["event_log_bytes_per_event"]
    lines += [
        "",
        f"Peak RSS of a worker: {rows[0][3]:,.0f} MB stateless, {rows[1][3]:,.0f} MB SQLite, {rows[2][3]:,.0f} MB Redis. "
        f"Goals: +2 ms at p50 (measured {sqlite_c1:+.2f} ms); 150 requests/s with 2 workers on SQLite (measured "
        f"{rows[3][2][16]['rps']:,.0f}, 3 runs {spread}).",
        "",
        f"Per 1,000,000 demo events ({size['entities']:,.0f} card and device records): SQLite {size['sqlite_mb']:,.0f} MB "
        f"(loaded in {size['load_s_sqlite']:.0f} s), Redis +{size['redis_mb']:,.0f} MB ({size['load_s_redis']:.0f} s); "
        f"the event-id log {log_mb:,.0f} bytes per recorded event ({log_mb:,.0f} MB per million, kept 7 days by default).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        replace_section(ROOT / "BENCHMARKS.md", "state", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
