"""Rule 1 (issue 37): a default changes only where it wins on shared files it was not chosen on.

The 23 shared files (``../shared/BENCHMARK.md``) fall into two fixed halves, ``A`` and ``B``,
by a rule written down before any result of this script was seen (:func:`halves`): sorted by
rows, dealt A, B, B, A, A, B, B, A, ... so that each half holds small, middling and large
files, and the three fraud CSVs are split between them (a test checks both). A candidate is
screened on one half (one seed, to choose among candidates), then confirmed on the other over
seeds 0-2, and the roles swap. It becomes the default only if, on **both** halves, over seeds
0-2, with PyOD KNN fitted on the same rows, its mean AUROC and mean AUPRC are no lower than
the baseline's, and, for a change made for detection (a schedule, a width), one of them is
higher on each half. CONTRIBUTING.md states the rule; every default change goes through it.

Configurations are the baseline, ``default`` (the code as it stands), and candidates written
as parts joined by ``+``:

- the training-schedule parts of ``benchmarks/underfit.py`` (``stepsN``, ``patienceN``,
  ``decayN``, ``batchN``, ``lrX``, ``latentN``, ``priorK``);
- ``widthsA-B``: hidden widths A, B (``widths128-64`` is the default before issue 13);
- ``noratio``: no ratio scale (``fraudvae.data.preprocessing.RATIO_SPAN`` infinite): every
  numeric column modelled as before issue 37.

A candidate that only changes the preprocessing and leaves every column of a file encoded as
the baseline encodes it trains bit for bit as the baseline (the golden tests hold training
deterministic for a seed): its row there is the baseline's, marked ``same_encoding``, not a
second fit of the same thing.

Writes one row per (configuration, defaults signature, file, seed) to
``benchmarks/results/halves.jsonl`` (resumes; rows of an older default are not reused) and the
verdict tables to docs/experiments/2026-12-05-held-out-halves.md.

Run:  .venv/bin/python benchmarks/halves.py --baseline noratio --candidate default --seeds 0,1,2
      .venv/bin/python benchmarks/halves.py --baseline default --candidate decay2 --seeds 0 --half A
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pyod.models.knn import KNN

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import protocol, underfit
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector
from fraudvae.data import preprocessing as fv_preprocessing
from fraudvae.data.inference import infer_schema
from fraudvae.data.preprocessing import Preprocessor
from fraudvae.detection.fitting import MIN_SPLIT_ROWS
from fraudvae.model import schedule as fv_schedule

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "halves.jsonl"
DOC = ROOT / "docs" / "experiments" / "2026-12-05-held-out-halves.md"

#: Rows of each shared file (features and label as ``protocol.load`` reads them).
ROWS = {
    "14_glass": 214,
    "39_vertebral": 240,
    "29_Pima": 768,
    "20_letter": 1600,
    "6_cardio": 1831,
    "12_fault": 1941,
    "7_Cardiotocography": 2114,
    "38_thyroid": 3772,
    "35_SpamBase": 4207,
    "44_Wilt": 4819,
    "26_optdigits": 5216,
    "27_PageBlocks": 5393,
    "19_landsat": 6435,
    "2_annthyroid": 7200,
    "23_mammography": 11183,
    "ulb_creditcard": 12247,
    "carclaims": 15420,
    "22_magic.gamma": 19020,
    "nsl_kdd_train20": 25192,
    "5_campaign": 41188,
    "32_shuttle": 49097,
    "33_skin": 245057,
    "10_cover": 286048,
}


def halves(rows: dict[str, int]) -> dict[str, list[str]]:
    """Sorted by rows (then name), dealt A, B, B, A, A, B, B, A, ...: sizes balanced across halves."""
    out: dict[str, list[str]] = {"A": [], "B": []}
    for i, name in enumerate(sorted(rows, key=lambda n: (rows[n], n))):
        out["AB"[(i + 1) // 2 % 2]].append(name)
    return out


#: Fixed before any result of this script existed (``halves(ROWS)``; a test holds them equal).
HALVES = {
    "A": [
        "14_glass",
        "20_letter",
        "6_cardio",
        "38_thyroid",
        "35_SpamBase",
        "27_PageBlocks",
        "19_landsat",
        "ulb_creditcard",
        "carclaims",
        "5_campaign",
        "32_shuttle",
    ],
    "B": [
        "39_vertebral",
        "29_Pima",
        "12_fault",
        "7_Cardiotocography",
        "44_Wilt",
        "26_optdigits",
        "2_annthyroid",
        "23_mammography",
        "22_magic.gamma",
        "nsl_kdd_train20",
        "33_skin",
        "10_cover",
    ],
}

_WIDTHS = re.compile(r"^widths(\d+)-(\d+)$")


def parse(config: str) -> tuple[dict[str, Any], dict[str, float], bool]:
    """``(VAEDetector parameters, underfit schedule parts, ratio scale on)`` of a configuration.

    Raises ``ValueError`` naming a part it does not know: a typo must not fit the default.
    """
    params: dict[str, Any] = {}
    ratio = True
    rest = []
    for part in [] if config == "default" else config.split("+"):
        m = _WIDTHS.match(part)
        if m:
            params["hidden_dims"] = (int(m.group(1)), int(m.group(2)))
        elif part == "noratio":
            ratio = False
        else:
            rest.append(part)
    schedule = underfit.parse("+".join(rest)) if rest else {}
    if "gmm" in schedule:
        raise ValueError(f"{config!r}: gmmK is not a VAE configuration")
    return {**params, **underfit._params(schedule)}, schedule, ratio


@contextlib.contextmanager
def _ratio(on: bool) -> Iterator[None]:
    saved = fv_preprocessing.RATIO_SPAN
    fv_preprocessing.RATIO_SPAN = saved if on else math.inf
    try:
        yield
    finally:
        fv_preprocessing.RATIO_SPAN = saved


@contextlib.contextmanager
def applied(config: str) -> Iterator[dict[str, Any]]:
    """Within: the configuration's module settings; yields its ``VAEDetector`` parameters."""
    params, schedule, ratio = parse(config)
    with (
        underfit._budget(schedule.get("steps")),
        underfit._decays(schedule.get("decay")),
        underfit._batch(schedule.get("batch")),
        _ratio(ratio),
    ):
        yield params


def signature() -> str:
    """Today's defaults: parameters and the module constants the configurations move."""
    state = {
        "params": {k: repr(v) for k, v in VAEDetector().get_params().items()},
        "ratio": [fv_preprocessing.RATIO_SPAN, fv_preprocessing.RATIO_ZERO_SDS, fv_preprocessing._RATIO_ZERO],
        "skew": fv_preprocessing._SKEW_FOR_LOG,
        "schedule": [fv_schedule.TARGET_STEPS, fv_schedule.MAX_EPOCHS, fv_schedule.MIN_EPOCHS, fv_schedule.STEP_BUDGET],
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:12]


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()] if OUT.exists() else []


def _done(sig: str) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(r["config"], r["name"], r["seed"]): r for r in _rows() if r["signature"] == sig}


def reuse_detection(config: str) -> None:
    """Take ``benchmarks/detection.py``'s fits of the shipped default (and KNN's) as ``config``'s rows.

    Only for the configuration that *is* the default those fits were made with; the rows
    get today's signature, so they stop counting once a default moves.
    """
    from benchmarks import detection

    sig, done = signature(), _done(signature())
    with OUT.open("a") as out:
        for (name, seed, method), r in sorted(detection.load_state().items()):
            as_config = {"fraudvae": config, "PyOD KNN": "KNN"}.get(method)
            if as_config is None or (as_config, name, seed) in done:
                continue
            row = {"config": as_config, "signature": sig, "name": name, "seed": seed, "auroc": r["auroc"]}
            row |= {"auprc": r["auprc"], "secs": r["fit_s"] + r["score_s"], "from": "detection.jsonl"}
            out.write(json.dumps(row) + "\n")


def _encodings(config: str, s: protocol.Split) -> list[tuple[str, str, float]]:
    """Each numeric column's scale as the fit of ``config`` sees it (its training rows, as ``fitting`` picks them)."""
    with applied(config):
        schema = infer_schema(s.X_train, None, max_categories=100)
        clean = schema.validate_frame(s.X_train).frame
        n = len(clean)
        perm = np.random.default_rng(s.seed).permutation(n)
        n_val = round(0.1 * n)
        if n_val >= MIN_SPLIT_ROWS and n - n_val >= MIN_SPLIT_ROWS:
            clean = clean.iloc[np.sort(perm[n_val:])].reset_index(drop=True)
        pre = Preprocessor.fit(clean, schema, max_categories=100, min_category_count=5)
    return [(n, st["transform"], st["shift"]) for n, st in pre.stats.items() if st["kind"] == "numeric"]


def _fit(config: str, s: protocol.Split) -> dict[str, Any]:
    started = time.perf_counter()
    if config == "KNN":
        A, B = protocol.peer_matrices(s.X_train, s.X_test)
        score = KNN().fit(A).decision_function(B)
    else:
        with applied(config) as params:
            det = VAEDetector(random_state=s.seed, **params).fit(s.X_train)
        score = det.anomaly_score(s.X_test)
    auroc, auprc = protocol.auc_pair(s.y_test, score)
    return {"auroc": auroc, "auprc": auprc, "secs": time.perf_counter() - started}


def run(configs: list[str], seeds: list[int], names: list[str], baseline: str) -> None:
    sig = signature()
    done = _done(sig)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as out:
        for name in names:
            todo = [(c, seed) for seed in seeds for c in ["KNN", baseline, *configs] if (c, name, seed) not in done]
            if not todo:
                continue
            X, y = protocol.load(name)
            for config, seed in todo:
                if (config, name, seed) in done:
                    continue
                s = protocol.split(name, X, y, seed)
                base = done.get((baseline, name, seed))
                row: dict[str, Any] = {"config": config, "signature": sig, "name": name, "seed": seed}
                only_preprocessing = config != "KNN" and not parse(config)[0] and not parse(config)[1]
                if (
                    base is not None
                    and config != baseline
                    and only_preprocessing
                    and not parse(baseline)[0]
                    and not parse(baseline)[1]
                    and _encodings(config, s) == _encodings(baseline, s)
                ):
                    row |= {k: base[k] for k in ("auroc", "auprc", "secs")} | {
                        "same_encoding": True,
                        "same_as": baseline,
                    }
                else:
                    row |= _fit(config, s)
                print(json.dumps(row), flush=True)
                out.write(json.dumps(row) + "\n")
                out.flush()
                done[(config, name, seed)] = row


def _means(done: dict, config: str, names: list[str], seeds: list[int]) -> tuple[float, float, float] | None:
    if not all((config, n, s) in done for n in names for s in seeds):
        return None
    per_file = [[done[(config, n, s)] for s in seeds] for n in names]
    auroc = float(np.mean([np.mean([r["auroc"] for r in rows]) for rows in per_file]))
    auprc = float(np.mean([np.mean([r["auprc"] for r in rows]) for rows in per_file]))
    return auroc, auprc, float(sum(r["secs"] for rows in per_file for r in rows))


def verdict(baseline: str, candidate: str, seeds: list[int], *, for_detection: bool) -> tuple[str, bool | None]:
    """A table of both halves and whether ``candidate`` passes rule 1 against ``baseline``."""
    done = _done(signature())
    lines = [
        f"`{candidate}` against `{baseline}`, seeds {', '.join(map(str, seeds))}, mean AUROC / AUPRC over the "
        "half's files (each file the mean over seeds), PyOD KNN fitted on the same rows; fit and score "
        "seconds summed.",
        "",
        "| half | files | KNN | baseline | candidate | change | seconds, candidate / baseline |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    passed: bool | None = True
    for half, names in HALVES.items():
        knn, base, cand = (_means(done, c, names, seeds) for c in ("KNN", baseline, candidate))
        if base is None or cand is None or knn is None:
            lines.append(f"| {half} | {len(names)} | not measured | | | | |")
            passed = None
            continue
        d_roc, d_prc = cand[0] - base[0], cand[1] - base[1]
        ok = d_roc >= 0 and d_prc >= 0 and (not for_detection or d_roc > 0 or d_prc > 0)
        if passed is not None:
            passed = passed and ok
        lines.append(
            f"| {half} | {len(names)} | {knn[0]:.3f} / {knn[1]:.3f} | {base[0]:.3f} / {base[1]:.3f} | "
            f"{cand[0]:.3f} / {cand[1]:.3f} | {d_roc:+.3f} / {d_prc:+.3f} | {cand[2] / base[2]:.2f} |"
        )
    word = {True: "**passes** rule 1", False: "**fails** rule 1", None: "not measured on both halves"}[passed]
    lines += ["", f"Verdict: `{candidate}` {word}."]
    return "\n".join(lines) + "\n", passed


def per_file(baseline: str, candidate: str, seeds: list[int]) -> str:
    done = _done(signature())
    lines = [
        f"Per file, `{candidate}` against `{baseline}` (mean over seeds {', '.join(map(str, seeds))}); "
        "`=` where every column was encoded as the baseline encodes it (the same fit).",
        "",
        "| half | file | KNN | baseline | candidate |",
        "|---|---|---:|---:|---:|",
    ]
    for half, names in HALVES.items():
        for n in names:
            cells = []
            for c in ("KNN", baseline, candidate):
                rows = [done.get((c, n, s)) for s in seeds]
                if any(r is None for r in rows):
                    cells.append("")
                    continue
                # Rows copied before "same_as" was recorded were copies of noratio's.
                same = c == candidate and all(
                    r.get("same_as", "noratio" if r.get("same_encoding") else None) == baseline for r in rows
                )
                mean = (np.mean([r["auroc"] for r in rows]), np.mean([r["auprc"] for r in rows]))
                cells.append("=" if same else f"{mean[0]:.3f} / {mean[1]:.3f}")
            lines.append(f"| {half} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def spread(baseline: str, candidate: str, seeds: list[int]) -> str:
    """Rule 1's stability clause: the mean over files of each one's standard deviation over ``seeds``."""
    done = _done(signature())
    names = [n for n in ROWS if all((c, n, s) in done for c in (baseline, candidate) for s in seeds)]
    lines = [
        f"Spread over seeds {', '.join(map(str, seeds))}: each file's standard deviation of AUROC / AUPRC, "
        f"mean over the {len(names)} files measured.",
        "",
        "| configuration | mean spread AUROC | mean spread AUPRC |",
        "|---|---:|---:|",
    ]
    for c in (baseline, candidate):
        sd = {m: np.mean([np.std([done[(c, n, s)][m] for s in seeds]) for n in names]) for m in ("auroc", "auprc")}
        lines.append(f"| `{c}` | {sd['auroc']:.4f} | {sd['auprc']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="default")
    parser.add_argument("--candidate", required=True, help="configurations joined by ','")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--half", choices=["A", "B"], help="only this half's files (screening)")
    parser.add_argument("--section", help="write the verdict into this section of the study's page")
    parser.add_argument("--reuse-detection", metavar="CONFIG", help="detection.py's default fits stand for CONFIG")
    parser.add_argument("--spread", action="store_true", help="only print the spread table over --seeds")
    parser.add_argument("--for-detection", action="store_true", help="the change must also gain on each half")
    args = parser.parse_args()
    candidates, seeds = args.candidate.split(","), [int(s) for s in args.seeds.split(",")]
    for c in [args.baseline, *candidates]:
        try:
            parse(c)
        except ValueError as exc:
            parser.error(str(exc))
    if args.spread:
        text = "\n".join(spread(args.baseline, c, seeds) for c in candidates)
        print(text)
        if args.section:
            replace_section(DOC, f"{args.section}_spread", text)
        return 0
    if args.reuse_detection:
        reuse_detection(args.reuse_detection)
    names = HALVES[args.half] if args.half else [*HALVES["A"], *HALVES["B"]]
    run(candidates, seeds, names, args.baseline)
    texts = []
    for c in candidates:
        text, _ = verdict(args.baseline, c, seeds, for_detection=args.for_detection)
        texts.append(text + "\n" + per_file(args.baseline, c, seeds))
    print("\n".join(texts))
    if args.section:
        replace_section(DOC, args.section, "\n".join(texts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
