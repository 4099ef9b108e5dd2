"""Quality floors on the real data (../shared/data), seed 0 of the benchmark protocol.

The side-by-side table over three seeds is in BENCHMARKS.md (benchmarks/detection.py).
Trained weights differ between CPU types as they differ between seeds, so each floor
carries a margin measured over seeds 0-4 (``benchmarks/seed_spread.py`` writes
``benchmarks/results/seed_spread.json``; re-run it after a change to the detector):

    floor(file) = min over seeds of (fraudvae AUROC - IsolationForest AUROC)
                  - max(range over seeds of that difference, 0.01)

A full range below the lowest of five seeds: for a roughly normal spread that is about
3.5 standard deviations below the mean, so another machine passes, while a real
regression (a drop beyond anything the seeds showed) fails. The same rule pins the mean
over files. The product goal of "never more than 0.05 below IsolationForest" is tracked
per seed in BENCHMARKS.md; Cardiotocography (every seed), cardio and annthyroid (some seeds)
do not meet it yet, and their floors say so.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from benchmarks import protocol
from fraudvae import VAEDetector

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

#: Every ADBench file (the first eight and the twelve of issue 13, where KNN led) and the ULB card data.
SETS = [*protocol.ADBENCH_ALL, "ulb_creditcard"]
_results: dict[str, tuple[float, float]] = {}
SPREAD = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/seed_spread.json").read_text())
MIN_MARGIN = 0.01


def _floor(differences: list[float]) -> float:
    return min(differences) - max(max(differences) - min(differences), MIN_MARGIN)


def floor_for(name: str) -> float:
    """The lowest acceptable (fraudvae - IsolationForest) AUROC difference on ``name`` (see above)."""
    return _floor([r["difference"] for r in SPREAD["files"][name].values()])


def mean_floor(names: list[str]) -> float:
    per_seed = [np.mean([SPREAD["files"][n][str(seed)]["difference"] for n in names]) for seed in SPREAD["seeds"]]
    return _floor([float(v) for v in per_seed])


@functools.cache
def _fitted(name: str) -> tuple[protocol.Split, VAEDetector]:
    """Seed 0's split of ``name`` and the default detector fitted on it: one fit per file for
    every test of this module (the detector is only read after the fit)."""
    X, y = protocol.load(name)
    s = protocol.split(name, X, y, seed=0)
    return s, VAEDetector(random_state=0).fit(s.X_train)


def _aurocs(name: str) -> tuple[float, float]:
    if name not in _results:
        s, det = _fitted(name)
        ours = roc_auc_score(s.y_test, det.anomaly_score(s.X_test))
        A, B = protocol.peer_matrices(s.X_train, s.X_test)
        iso = IsolationForest(n_estimators=200, random_state=0).fit(A)
        _results[name] = (ours, roc_auc_score(s.y_test, -iso.score_samples(B)))
    return _results[name]


#: The protocol feeds every column as it comes; some ADBench files hold columns that are
#: constant in the normal training rows (cardiotocography, optdigits), which the detector
#: rightly warns about.
_CONSTANT_COLUMNS_OK = pytest.mark.filterwarnings(
    "ignore:Column\\(s\\) .* are constant:fraudvae.exceptions.DataWarning"
)


@_CONSTANT_COLUMNS_OK
@pytest.mark.parametrize("name", SETS)
def test_no_file_below_its_measured_floor_against_isolation_forest(shared_data, name: str) -> None:
    ours, iso = _aurocs(name)
    floor = floor_for(name)
    assert ours - iso >= floor, (
        f"{name}: fraudvae AUROC {ours:.3f} vs IsolationForest {iso:.3f} ({ours - iso:+.3f}); "
        f"the floor measured over seeds is {floor:+.3f}"
    )


@_CONSTANT_COLUMNS_OK
def test_mean_auroc_against_isolation_forest_within_its_measured_floor(shared_data) -> None:
    pairs = np.array([_aurocs(n) for n in SETS])
    gap, floor = float((pairs[:, 0] - pairs[:, 1]).mean()), mean_floor(SETS)
    assert gap >= floor, f"mean difference {gap:+.3f}; the floor measured over seeds is {floor:+.3f}"
    assert floor > 0, "on average over these files fraudvae must stay ahead of IsolationForest on every seed"


def test_regression_cardio_floor_had_no_margin() -> None:
    """cardio's floor was IsolationForest - 0.05 and passed by 0.0005 on one machine; on an AMD
    EPYC (and on this project's CI machine) seed 0 gives 0.876-0.882, so ``make test`` failed.
    The floor now comes from the seed spread and lies below every seed measured."""
    runs = SPREAD["files"]["6_cardio"].values()
    assert all(r["difference"] - floor_for("6_cardio") >= MIN_MARGIN for r in runs)
    assert len(runs) >= 5


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")  # the row counter is left out, with a warning
def test_carclaims_mixed_types_beat_one_hot_isolation_forest(shared_data) -> None:
    s, det = _fitted("carclaims")  # no hand preprocessing: strings, ints, the row counter
    ours = roc_auc_score(s.y_test, det.anomaly_score(s.X_test))
    A, B = protocol.peer_matrices(s.X_train, s.X_test)
    iso = roc_auc_score(s.y_test, -IsolationForest(n_estimators=200, random_state=0).fit(A).score_samples(B))
    floor = max(floor_for("carclaims"), 0.0)  # ahead of the peer, and within the measured spread
    assert ours - iso > floor, (
        f"carclaims: fraudvae {ours:.3f} vs one-hot IsolationForest {iso:.3f}, floor {floor:+.3f}"
    )


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")  # carclaims' row counter, left out
@pytest.mark.parametrize("dataset", ["ulb_creditcard", "carclaims"])
def test_explain_ranks_an_injected_single_feature_outlier_first(shared_data, dataset: str) -> None:
    """Push one numeric column of a normal row far out: explain must blame that column (the
    row counter ``PolicyNumber`` is left out of the model, so never a column to blame)."""
    s, det = _fitted(dataset)
    numeric = [c.name for c in det.schema_.modelled if c.kind == "numeric"]
    rng = np.random.default_rng(0)
    rows = s.X_test[s.y_test == 0].sample(200, random_state=0).reset_index(drop=True)
    injected = rows.astype({c: float for c in numeric})
    columns = rng.choice(numeric, size=len(rows))
    for i, col in enumerate(columns):
        train_col = s.X_train[col].astype(float)
        spread = float(train_col.quantile(0.75) - train_col.quantile(0.25)) or float(train_col.std()) or 1.0
        injected.loc[i, col] = float(train_col.max()) + 10 * spread
    top = det.explain(injected, top_k=1)["feature"].to_numpy()
    hit_rate = float(np.mean(top == columns))
    # Measured on ulb: 0.905 with every column linear but Amount; 0.895 since its Time (seconds
    # over two days, from near zero) is on a ratio scale (issue 37), where 6x the training
    # maximum is 4.5 deviations out rather than 10 IQRs. V21 and V8 are never ranked first
    # (10 and 5 of the 200 rows), before and after. Over seeds 0-4 of the fit (weights differ by
    # CPU as by seed): ulb 0.895-0.975, car claims 0.985-1.000; the floor is 0.045 under the lowest.
    assert hit_rate >= 0.85, f"{dataset}: injected column ranked first in {hit_rate:.0%} of rows"


def messy_export(X: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """What real exports add to a clean file: ids, names, streets, free text, an empty and a
    constant column, and the time as ISO strings."""
    n = len(X)
    first = np.array([f"First{i}" for i in range(300)])
    last = np.array([f"Last{i}" for i in range(400)])
    words = np.array(
        [
            "card",
            "online",
            "refund",
            "gift",
            "travel",
            "fuel",
            "grocery",
            "store",
            "payment",
            "transfer",
            "monthly",
            "bill",
        ]
    )
    out = X.copy()
    out.insert(0, "transaction_id", [f"{rng.integers(0, 2**63):016x}{i:08x}" for i in range(n)])
    out["first_name"] = rng.choice(first, n)
    out["last_name"] = rng.choice(last, n)
    out["street"] = [f"{rng.integers(1, 9999)} {rng.choice(last)} Street" for _ in range(n)]
    out["memo"] = [" ".join(rng.choice(words, rng.integers(2, 6))) + f" #{rng.integers(0, 10**6)}" for _ in range(n)]
    out["empty"] = np.nan
    out["source"] = "export-v2"
    out["timestamp"] = (pd.Timestamp("2013-09-01") + pd.to_timedelta(X["Time"], unit="s")).dt.strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    return out


def test_posterior_does_not_collapse(shared_data) -> None:
    """Posterior collapse (KL -> 0, decoder ignores z) is a known VAE failure; guarded on the ULB
    file's default fit (the floor's: moved from test_training.py, which fitted its own)."""
    s, det = _fitted("ulb_creditcard")
    assert det.history_[-1]["kl"] > 1.0, f"KL collapsed to {det.history_[-1]['kl']:.3f} nats per row"
    result = det.score_frame(s.X_test.iloc[:500])
    kl = result.contributions[:, -1]  # the <latent> term of the ELBO is the KL
    assert np.median(kl) > 0.5
    assert result.latent_mean.std(axis=0).max() > 0.3, "posterior means must differ between rows"


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")
def test_messy_export_scores_within_001_of_the_clean_file(shared_data) -> None:
    """The ULB card file, clean and as a raw export (ids, names, a street, free text, an empty
    and a constant column, string timestamps, and values missing in 1% of the scoring rows
    only). Measured on seeds 0 and 1: -0.0007 and -0.0019 AUROC."""
    s, clean_det = _fitted("ulb_creditcard")
    clean = roc_auc_score(s.y_test, clean_det.anomaly_score(s.X_test))
    rng = np.random.default_rng(0)
    train, test = messy_export(s.X_train, rng), messy_export(s.X_test, rng)
    rows = rng.choice(len(test), len(test) // 100, replace=False)
    test.loc[rows, ["V1", "V2", "Amount"]] = np.nan  # never missing in training
    det = VAEDetector(random_state=0).fit(train)
    messy = roc_auc_score(s.y_test, det.anomaly_score(test))
    assert abs(messy - clean) <= 0.01, f"clean {clean:.4f}, messy export {messy:.4f}"
    assert set(det.schema_.roles()) == {"transaction_id", "first_name", "last_name", "street", "memo", "empty"}
    named = det.explain(test.iloc[rows[:20]], top_k=3)
    assert named.groupby("row")["feature"].apply(lambda f: bool({"V1", "V2", "Amount"} & set(f))).all()
