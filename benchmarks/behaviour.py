"""Behavioural features: what they buy, what they cost, and the batch job's memory with them.

Three parts, each written to its own section of BENCHMARKS.md:

* ``demo``: the demo's raw card events (40,000, seeds 0-2), trained with and without the
  demo's spec on the same time-ordered split (60/20/20): AUROC and AUPRC of the test part.
* ``banksim``: BankSim's dev half (``../shared/data/entity``): the features of all events
  computed in process, against the batch job scoring the same file without features, in the
  same run; then detection with and without a per-customer spec (time-ordered split by step).
* ``memory``: a generated 2M-event file (and 200k): ``fraudvae score`` with the demo's spec
  against a spec-less model on the same columns, each in its own process: rows/s and peak RSS.

Run: .venv/bin/python benchmarks/behaviour.py [--parts demo,banksim,memory]   (about 15 minutes)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from benchmarks.markdown import replace_section
from fraudvae.datasets.events import DEMO_FEATURE_SPEC, make_card_events
from fraudvae.features.stream import compute_features, load_spec
from fraudvae.jobs.workflows import evaluate_file, train_file

ROOT = Path(__file__).resolve().parents[1]
BANKSIM = ROOT.parent / "shared" / "data" / "entity" / "banksim_dev.csv.gz"
_SCORE = """
import json, sys, time
from fraudvae.jobs.batch import score_file
t = time.perf_counter()
s = score_file(sys.argv[1], sys.argv[2], sys.argv[3])
peak = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"rows": s.rows_scored, "seconds": time.perf_counter() - t, "peak_rss_mb": peak}))
"""


def _score(model: Path, data: Path, out: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _SCORE, str(model), str(data), str(out)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _train(data: Path, out: Path, spec: Path | None, time_column: str, label: str, seed: int, drop: list[str]) -> dict:
    train_file(
        data,
        out,
        label_column=label,
        normal_value="0",
        time_column=time_column,
        drop_columns=drop,
        features=spec,
        compare=False,
        log=lambda line: None,
        random_state=seed,
    )
    with tempfile.TemporaryDirectory() as report:
        return evaluate_file(out, data, label, report).metrics


def demo(work: Path) -> str:
    spec = work / "features.toml"
    spec.write_text(DEMO_FEATURE_SPEC)
    lines = [
        "| seed | AUROC without | AUROC with | AUPRC without | AUPRC with | AUPRC with / without |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for seed in (0, 1, 2):
        data = work / f"events{seed}.csv"
        make_card_events(40_000, random_state=seed).to_csv(data, index=False)
        m = {}
        for name, s in (("without", None), ("with", spec)):
            m[name] = _train(data, work / f"m{seed}{name}", s, "timestamp", "is_fraud", seed, ["transaction_id"])
        ratio = m["with"]["auprc"] / m["without"]["auprc"]
        ratios.append(ratio)
        lines.append(
            f"| {seed} | {m['without']['auroc']:.3f} | {m['with']['auroc']:.3f} | {m['without']['auprc']:.3f} "
            f"| {m['with']['auprc']:.3f} | {ratio:.1f}x |"
        )
        print(lines[-1], flush=True)
    lines.append(f"\nSmallest ratio over the seeds: {min(ratios):.1f}x (target: at least 1.5x).")
    return "\n".join(lines) + "\n"


def banksim(work: Path) -> str:
    frame = pd.read_csv(BANKSIM)
    data = work / "banksim.csv"
    frame.to_csv(data, index=False)
    spec_path = work / "banksim.toml"
    spec_path.write_text(
        '[time]\ncolumn = "step"\nunit = "d"\n\n[[entity]]\nkeys = ["customer"]\nwindows = ["1d", "7d", "all"]\n'
        'count = true\nsum = ["amount"]\nmax = ["amount"]\ndistinct = ["merchant"]\ntime_since_previous = true\n'
        'ratio_to_past_mean = ["amount"]\nnew_value = ["merchant", "category"]\n'
    )
    # The step is the event time, not a feature: on a split by time, the test part's steps lie
    # beyond every training step and would dominate the score (AUROC 0.51 with it as a column).
    raw = _train(data, work / "raw", None, "step", "fraud", 0, ["step"])
    featured = _train(data, work / "featured", spec_path, "step", "fraud", 0, ["step"])
    batch = _score(work / "raw", data, work / "scored.parquet")
    started = time.perf_counter()
    events = pd.read_csv(data)
    read_s = time.perf_counter() - started
    features = compute_features(events, load_spec(spec_path))
    compute_s = time.perf_counter() - started - read_s
    feature_s = read_s + compute_s
    lines = [
        f"{len(frame):,} events, {features.shape[1]} customer features (1 d, 7 d and whole-past windows: count, sum, "
        "max, distinct merchants; time since previous; ratio to the past mean; new merchant, new category).",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| the batch job scoring the file without features (`fraudvae score`, own process) | {batch['seconds']:.1f} |",
        f"| computing every event's features in process (pandas read included) | {feature_s:.1f} |",
        f"| of which the computation alone | {compute_s:.1f} |",
        f"\nFeatures / batch scoring time: {feature_s / batch['seconds']:.2f} (target: at most 2).",
        "",
        "| model (time-ordered split by step, seed 0; `step` is not a column of the model) | AUROC | AUPRC |",
        "|---|---:|---:|",
        f"| raw columns | {raw['auroc']:.3f} | {raw['auprc']:.3f} |",
        f"| raw columns + the spec | {featured['auroc']:.3f} | {featured['auprc']:.3f} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def memory(work: Path) -> str:
    spec = work / "features.toml"
    spec.write_text(DEMO_FEATURE_SPEC)
    train = work / "train.csv"
    make_card_events(40_000, random_state=0).to_csv(train, index=False)
    for name, s in (("raw", None), ("featured", spec)):
        train_file(
            train,
            work / name,
            label_column="is_fraud",
            normal_value="0",
            time_column="timestamp",
            drop_columns=["transaction_id"],
            features=s,
            compare=False,
            log=lambda line: None,
            random_state=0,
        )
    lines = ["| events | model | rows/s | peak RSS MB |", "|---:|---|---:|---:|"]
    peaks = {}
    for n in (200_000, 2_000_000):
        data = work / f"events{n}.csv"
        make_card_events(n, random_state=1).to_csv(data, index=False)
        for name in ("raw", "featured"):
            r = _score(work / name, data, work / f"o{n}{name}.parquet")
            peaks[(n, name)] = r["peak_rss_mb"]
            label = (
                "demo spec (card and device windows, row features)" if name == "featured" else "no spec, same columns"
            )
            lines.append(f"| {n:,} | {label} | {r['rows'] / r['seconds']:,.0f} | {r['peak_rss_mb']:,.0f} |")
            print(lines[-1], flush=True)
        data.unlink()
    lines.append(
        f"\nPeak memory with the spec, 2M events vs 200k: {peaks[(2_000_000, 'featured')] / peaks[(200_000, 'featured')]:.2f}x; "
        f"with vs without the spec at 2M: {peaks[(2_000_000, 'featured')] / peaks[(2_000_000, 'raw')]:.2f}x."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="demo,banksim,memory")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    parts = {"demo": demo, "banksim": banksim, "memory": memory}
    for name in args.parts.split(","):
        with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
            text = parts[name](Path(tmp))
        print(text, flush=True)
        if not args.no_write:
            replace_section(ROOT / "BENCHMARKS.md", f"behaviour_{name}", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
