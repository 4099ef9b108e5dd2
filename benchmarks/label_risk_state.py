"""What online label risk costs per event as a key gets busier (issue 39).

A ``[[label_risk]]`` key's record holds its events of the last ``delay`` + longest window
(each with its id and label), read and written whole by every event of that key. For one
key receiving ``rate`` events a day (7-day delay, 1, 7 and 28-day windows: 35 days kept), the
store is warmed with 40 days of events, then 200 more are scored one at a time in process
(:class:`fraudvae.state.online.OnlineScorer` on SQLite, features only: the detector's cost
does not depend on the record); the same with a spec without label risk beside it. Reports
ms per event (median) and the record's size.

Run:  .venv/bin/python benchmarks/label_risk_state.py     (about 2 minutes)
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.markdown import replace_section
from fraudvae.features.online import update_events
from fraudvae.features.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "experiments" / "2026-12-06-label-risk.md"
RATES = (10, 100, 1000)
TIME = {"column": "t", "unit": "s"}
ENTITY = {"keys": ["card"], "windows": ["1h"], "count": True}
RISK = {"keys": ["merchant"], "label": "y", "windows": ["1d", "7d", "28d"], "delay": "7d"}


def _events(rate: int, days: float, start: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(rate * days)
    t = np.sort(start + rng.random(n) * days * 86400.0)
    return pd.DataFrame({"t": t, "card": rng.integers(0, 5000, n).astype(str), "merchant": "m1"})


def _per_event_ms(spec_doc: dict, rate: int) -> tuple[float, int]:
    spec = parse_spec(spec_doc)
    store: dict[str, str] = {}
    warm = _events(rate, 40, 0.0, 0)
    ids = [f"w{i}" for i in range(len(warm))]
    for a in range(0, len(warm), 5000):
        store |= update_events(warm.iloc[a : a + 5000], spec, store, ids=ids[a : a + 5000]).records
    new = _events(rate, 200 / rate, 40 * 86400.0, 1)
    times = []
    for i in range(len(new)):
        part = new.iloc[[i]].reset_index(drop=True)
        started = time.perf_counter()
        store |= update_events(part, spec, store, ids=[f"n{i}"]).records
        times.append((time.perf_counter() - started) * 1000)
    size = max((len(v) for k, v in store.items() if k.startswith("\x1e")), default=0)
    return statistics.median(times), size


def main() -> int:
    rows = []
    for rate in RATES:
        base, _ = _per_event_ms({"time": TIME, "entity": [ENTITY]}, rate)
        risk, size = _per_event_ms({"time": TIME, "entity": [ENTITY], "label_risk": [RISK]}, rate)
        rows.append({"rate": rate, "without_ms": base, "with_ms": risk, "record_bytes": size})
        print(json.dumps(rows[-1]), flush=True)
    lines = [
        "One merchant receiving `rate` events a day; features of one event in process, median of 200 "
        "(7-day delay, 1/7/28-day windows: 35 days of the merchant's events in its record).",
        "",
        "| events a day | without label risk ms | with label risk ms | the merchant's record |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['rate']:,} | {r['without_ms']:.2f} | {r['with_ms']:.2f} | {r['record_bytes'] / 1e6:.2f} MB |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(DOC, "label_risk_state", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
