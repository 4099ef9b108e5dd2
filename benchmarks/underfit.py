"""Does the default VAE under-fit its normal rows? Its held-out density and its training budget (issue 13).

Why: KNN leads on skin, cover, optdigits and landsat, where every parametric peer trails it
too, and issue 13 asks where the VAE under-fits to find the cause by measurement. A
likelihood score ranks rows only as well as the density fits, so this script measures, on
the protocol's splits (``../shared/BENCHMARK.md``), fitted like the default
(``VAEDetector(random_state=seed, **params)``):

- the held-out fit: the mean negative log-likelihood of the *normal* test rows (IWAE over 64
  draws, nats per row, in the encoded space the VAE models), lower = a better density;
- how the fit ended: epochs run against the automatic schedule's cap, and whether early
  stopping (validation loss, ``patience`` epochs without improvement) or the cap ended it;
- AUROC / AUPRC of the default score (negative ELBO at the posterior mean) and of IWAE-64.

Configurations (``+`` joins them):

- ``default``: the shipped detector.
- ``stepsN``: the automatic schedule's budget of ``N`` optimizer steps instead of
  ``fraudvae.model.schedule.STEP_BUDGET`` (its epoch cap ``MAX_EPOCHS`` scaled alike), early
  stopping unchanged: does the budget, not the validation loss, end the default's fits?
- ``patienceN``: early stopping after ``N`` epochs without improvement (the default's 10).
- ``decayN``: on a plateau, the learning rate times ``fraudvae.model.training.TrainConfig.lr_decay``
  and training goes on, ``N`` times, before the next plateau ends the fit.
- ``batchN``: automatic batches of a tenth of the rows, up to ``N``, where larger than the
  default's (fewer, larger steps per epoch; the learning rate scales with the batch).
- ``lrX``: learning rate ``X``; ``latentN``: latent size ``N``; ``priorK``: ``K`` prior components.
- ``gmmK``: not a VAE: scikit-learn's ``GaussianMixture`` (full covariances, ``K``
  components, ``reg_covar=1e-3``) on the default fit's encoded training rows (its design
  matrix), scored by its negative log-density: a reference for what a smooth parametric
  density reaches on the same rows. Its NLL is comparable with the VAE's only on files
  whose columns are all numeric (binaries and one-hots are Bernoulli / categorical heads in
  the VAE), so it is reported there only.

Writes one row per (configuration, file, seed) to ``benchmarks/results/underfit.jsonl``
(resumes) and the tables to docs/experiments/2026-12-05-underfit.md.

Run:  .venv/bin/python benchmarks/underfit.py                       (default, steps8000, gmm64; seed 0)
      .venv/bin/python benchmarks/underfit.py --configs steps32000 --files 33_skin,26_optdigits
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.mixture import GaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import protocol
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector
from fraudvae.model import backends as fv_backends
from fraudvae.model import schedule as fv_schedule
from fraudvae.model.backends import design_matrix

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "underfit.jsonl"
#: Draws of the IWAE estimate of the held-out log-likelihood.
IWAE_DRAWS = 64
CONFIGS = "default,steps8000,gmm64"
_PART = re.compile(r"^(steps|latent|prior|patience|decay|batch|gmm)([1-9]\d*)$|^lr(\d+(\.\d+)?(e-?\d+)?)$")


def parse(config: str) -> dict[str, float]:
    """``"steps8000+lr1e-3"`` -> ``{"steps": 8000, "lr": 0.001}``; ``"default"`` -> ``{}``.

    Raises ``ValueError`` naming the part it does not know: a typo must not fit the default.
    """
    if config == "default":
        return {}
    out: dict[str, float] = {}
    for part in config.split("+"):
        m = _PART.match(part)
        if m is None or (m.group(1) or "lr") in out:
            raise ValueError(
                f"configuration part {part!r} of {config!r} is unknown or repeated; expected default, stepsN, "
                "latentN, priorK, patienceN, decayN, batchN, gmmK (positive integers) or lrX, joined by '+'"
            )
        out[m.group(1) or "lr"] = float(m.group(2) or m.group(3))
    if "gmm" in out and len(out) > 1:
        raise ValueError(f"{config!r}: gmmK is a reference of its own; it takes no other part")
    return out


def _params(parts: dict[str, float]) -> dict[str, Any]:
    names = {"lr": "learning_rate", "latent": "latent_dim", "prior": "prior_components", "patience": "patience"}
    return {names[k]: (v if k == "lr" else int(v)) for k, v in parts.items() if k in names}


@contextlib.contextmanager
def _batch(most: float | None) -> Iterator[None]:
    """Automatic batches of a tenth of the rows up to ``most`` rows where that is larger than
    the default's (its learning rate scaled alike by ``fraudvae.model.schedule.scaled_lr``)."""
    saved = fv_backends.default_batch_size
    if most is not None:
        fv_backends.default_batch_size = lambda n: max(saved(n), min(int(most), n // 10))
    try:
        yield
    finally:
        fv_backends.default_batch_size = saved


@contextlib.contextmanager
def _decays(decays: float | None) -> Iterator[None]:
    """Fits that decay the learning rate on a plateau ``decays`` times before stopping."""
    saved = fv_backends.TrainConfig
    if decays is not None:
        fv_backends.TrainConfig = functools.partial(saved, decays=int(decays))  # type: ignore[misc]
    try:
        yield
    finally:
        fv_backends.TrainConfig = saved  # type: ignore[misc]


@contextlib.contextmanager
def _budget(steps: float | None) -> Iterator[None]:
    """The automatic schedule's epochs for ``steps`` optimizer steps (its epoch cap scaled alike).

    Only the epoch count changes: ``fraudvae.model.schedule.TARGET_STEPS`` also sets the batch
    size of large data, which stays the default's.
    """
    saved = fv_backends.default_epochs
    if steps is not None:
        most = max(fv_schedule.MAX_EPOCHS, round(fv_schedule.MAX_EPOCHS * steps / fv_schedule.STEP_BUDGET))
        fv_backends.default_epochs = functools.partial(saved, steps=int(steps), most=most)
    try:
        yield
    finally:
        fv_backends.default_epochs = saved


def vae_row(config: str, s: protocol.Split) -> tuple[dict[str, Any], VAEDetector]:
    parts = parse(config)
    started = time.perf_counter()
    with _budget(parts.get("steps")), _decays(parts.get("decay")), _batch(parts.get("batch")):
        det = VAEDetector(random_state=s.seed, **_params(parts)).fit(s.X_train)
    fit_s = time.perf_counter() - started
    elbo = det.anomaly_score(s.X_test)
    det.set_params(n_score_samples=IWAE_DRAWS)
    iwae = det.anomaly_score(s.X_test, scoring="iwae")
    normal = s.y_test == 0
    val = [h["val_loss"] for h in det.history_]
    row = {
        "config": config,
        "name": s.name,
        "seed": s.seed,
        "fit_s": fit_s,
        "epochs": len(val),
        "cap": int(det.train_config_["max_epochs"]),
        "best_epoch": int(np.argmin(val)) + 1,
        "elbo": protocol.auc_pair(s.y_test, elbo),
        "iwae": protocol.auc_pair(s.y_test, iwae),
        "nll": float(np.mean(iwae[normal])),
    }
    return row, det


def gmm_row(config: str, s: protocol.Split, det: VAEDetector) -> dict[str, Any]:
    """The reference density on the default fit's encoded rows (its preprocessing, not the VAE)."""
    k = int(parse(config)["gmm"])
    pre = det.engine_.preprocessor
    train = design_matrix(pre, det.engine_.prepare(s.X_train, errors="raise", warn_extra=False).enc)
    test_enc = det.engine_.prepare(s.X_test, errors="raise", warn_extra=False).enc
    test = design_matrix(pre, test_enc)
    started = time.perf_counter()
    gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=s.seed).fit(train)
    nll = -gmm.score_samples(test)
    all_numeric = test_enc.num.shape[1] == test.shape[1]
    return {
        "config": config,
        "name": s.name,
        "seed": s.seed,
        "fit_s": time.perf_counter() - started,
        "elbo": protocol.auc_pair(s.y_test, nll),
        "nll": float(np.mean(nll[s.y_test == 0])) if all_numeric else None,
    }


def _done() -> dict[tuple[str, str, int], dict[str, Any]]:
    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()] if OUT.exists() else []
    return {(r["config"], r["name"], r["seed"]): r for r in rows}


def run(configs: list[str], seeds: list[int], names: list[str]) -> None:
    done = _done()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as out:
        for name in names:
            if all((c, name, seed) in done for c in configs for seed in seeds):
                continue  # measured: not even loaded
            X, y = protocol.load(name)
            for seed in seeds:
                todo = [c for c in configs if (c, name, seed) not in done]
                if not todo:
                    continue
                s = protocol.split(name, X, y, seed)
                # The default's fit is a row and serves the GMM references (their encoding).
                needs_default = "default" in todo or any(c.startswith("gmm") for c in todo)
                default = vae_row("default", s) if needs_default else None
                for c in todo:
                    if c == "default" or c.startswith("gmm"):
                        assert default is not None
                        r = default[0] if c == "default" else gmm_row(c, s, default[1])
                    else:
                        r = vae_row(c, s)[0]
                    # Each row as soon as it is measured: a later failure loses none of them.
                    print(json.dumps(r), flush=True)
                    out.write(json.dumps(r) + "\n")
                    out.flush()
                    done[(r["config"], name, seed)] = r


def _fmt(pair: list[float]) -> str:
    return f"{pair[0]:.3f} / {pair[1]:.3f}"


def tables(done: dict[tuple[str, str, int], dict[str, Any]], configs: list[str], names: list[str], seed: int) -> str:
    """AUROC / AUPRC of ``configs`` on ``names``; then held-out NLL and epochs run / cap."""
    lines = ["| file | " + " | ".join(configs) + " |", "|---|" + "---:|" * len(configs)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(_fmt(done[(c, n, seed)]["elbo"]) for c in configs) + " |")
    means = [np.mean([done[(c, n, seed)]["elbo"] for n in names], axis=0).tolist() for c in configs]
    lines.append("| **mean** | " + " | ".join(f"**{_fmt(m)}**" for m in means) + " |")
    secs = [sum(done[(c, n, seed)]["fit_s"] for n in names) for c in configs]
    lines.append("| fit seconds, summed | " + " | ".join(f"{t:.0f}" for t in secs) + " |")
    lines += ["", "Held-out NLL of the normal test rows (nats per row; VAE: IWAE over 64 draws, with epochs run /"]
    lines += ["the schedule's cap, `*` where early stopping ended the fit; GMM: exact, all-numeric files only):", ""]
    lines += ["| file | " + " | ".join(configs) + " |", "|---|" + "---:|" * len(configs)]
    for n in names:
        cells = []
        for c in configs:
            r = done[(c, n, seed)]
            nll = "n/a" if r["nll"] is None else f"{r['nll']:.2f}"
            if "epochs" in r:
                nll += f" ({r['epochs']}/{r['cap']}{'*' if r['epochs'] < r['cap'] else ''})"
            cells.append(nll)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(seed: int = 0) -> str:
    """The configurations measured on every file that has the default; then those measured on some."""
    done = _done()
    every = [n for n in [*protocol.ADBENCH_ALL, *protocol.CSV_SETS] if ("default", n, seed) in done]
    if not every:
        return "No file has the default measured yet.\n"
    configs = list(dict.fromkeys(c for (c, _, s) in done if s == seed and c != "default"))
    full = ["default", *[c for c in configs if all((c, n, seed) in done for n in every)]]
    head = f"Seed {seed}, {len(every)} files, AUROC / AUPRC of each configuration's own score"
    parts = [head + " (negative ELBO at the posterior mean; the GMM's negative log-density):", ""]
    parts.append(tables(done, full, every, seed))
    partial = [c for c in configs if c not in full]
    some = [n for n in every if all((c, n, seed) in done for c in partial)]
    if partial and some:
        parts += ["", f"Configurations measured on {len(some)} files only, beside the others:", ""]
        parts.append(tables(done, [*[c for c in full if not c.startswith("gmm")], *partial], some, seed))
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", default=CONFIGS, help="comma-separated: default, steps8000, lr1e-3+steps8000, gmm64"
    )
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--files", default=",".join([*protocol.ADBENCH_ALL, *protocol.CSV_SETS]))
    args = parser.parse_args()
    configs = args.configs.split(",")
    for c in configs:
        try:
            parse(c)
        except ValueError as exc:
            parser.error(str(exc))
    run(configs, [int(s) for s in args.seeds.split(",")], args.files.split(","))
    text = "\n".join(report(seed) for seed in sorted({s for (_, _, s) in _done()}))
    print(text)
    replace_section(ROOT / "docs" / "experiments" / "2026-12-05-underfit.md", "underfit", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
