"""A built-in, seeded synthetic card-transaction dataset for the demo, the notebook and tests.

Normal behaviour is drawn per cardholder (home country, typical spend, active hours);
fraud follows three patterns that fraud teams see every day:

* **card testing**: bursts of tiny online amounts at high velocity;
* **account takeover**: large amounts at odd hours, far from home, on a new channel;
* **cross-border spike**: a card-present purchase abroad, far above the usual spend;
* **quiet** fraud that looks like the cardholder's own use (so recall is bounded).

Nothing here is real data; it only needs to look enough like it for the demo to teach.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["LABEL_COLUMN", "example_transaction", "make_transactions"]


def example_transaction() -> dict[str, object]:
    """One ordinary transaction of the demo schema, as a client sends it (tests, benchmarks, docs)."""
    return {
        "timestamp": "2026-02-01T10:15:00",
        "amount": 42.5,
        "merchant_category": "grocery",
        "country": "US",
        "channel": "pos",
        "card_present": True,
        "hour": 10,
        "distance_from_home_km": 3.2,
        "txn_count_1h": 0,
        "txn_count_24h": 2,
    }


LABEL_COLUMN = "is_fraud"

_MCC = [
    "grocery",
    "fuel",
    "restaurant",
    "retail",
    "travel",
    "electronics",
    "pharmacy",
    "entertainment",
    "utilities",
    "online_services",
]
_MCC_P = [0.24, 0.12, 0.16, 0.15, 0.04, 0.05, 0.07, 0.06, 0.05, 0.06]
_MCC_SPEND = {
    "grocery": 45,
    "fuel": 50,
    "restaurant": 35,
    "retail": 60,
    "travel": 300,
    "electronics": 250,
    "pharmacy": 25,
    "entertainment": 40,
    "utilities": 90,
    "online_services": 20,
}
_COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "CA"]
_FOREIGN = ["BR", "NG", "RU", "CN", "VN", "ID", "MX", "TR"]


def _normal_rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    mcc = rng.choice(_MCC, size=n, p=_MCC_P)
    base = np.array([_MCC_SPEND[m] for m in mcc])
    amount = np.round(base * rng.lognormal(0.0, 0.7, n), 2)
    home = rng.choice(_COUNTRIES, size=n, p=[0.45, 0.12, 0.1, 0.09, 0.07, 0.07, 0.05, 0.05])
    travelling = rng.random(n) < 0.04
    country = np.where(travelling, rng.choice(_COUNTRIES + _FOREIGN[:2], size=n), home)
    online = np.isin(mcc, ["online_services", "electronics", "travel"]) & (rng.random(n) < 0.7)
    online |= rng.random(n) < 0.12
    atm = ~online & (rng.random(n) < 0.04)
    channel = np.where(online, "online", np.where(atm, "atm", "pos"))
    amount = np.where(atm, rng.choice([20.0, 40.0, 60.0, 100.0, 200.0], size=n), amount)
    hour = np.clip(np.round(rng.normal(14.5, 4.2, n)), 0, 23).astype(int)
    distance = np.where(travelling, rng.lognormal(6.3, 1.0, n), rng.lognormal(1.8, 1.0, n))
    distance = np.round(distance, 1).astype(float)
    distance[online & (rng.random(n) < 0.5)] = np.nan
    c1 = rng.poisson(0.5, n)
    c24 = c1 + rng.poisson(2.5, n)
    return pd.DataFrame(
        {
            "amount": amount,
            "merchant_category": mcc,
            "country": country,
            "channel": channel,
            "card_present": ~online,
            "hour": hour,
            "distance_from_home_km": distance,
            "txn_count_1h": c1,
            "txn_count_24h": c24,
        }
    )


def _fraud_rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    kinds = rng.choice(["card_testing", "account_takeover", "cross_border", "quiet"], size=n, p=[0.35, 0.3, 0.2, 0.15])
    out = _normal_rows(rng, n)  # start from ordinary rows; each pattern changes a few things
    for i, k in enumerate(kinds):
        if k == "card_testing":
            burst = int(rng.integers(2, 15))
            out.loc[
                i, ["amount", "channel", "card_present", "distance_from_home_km", "txn_count_1h", "txn_count_24h"]
            ] = [
                round(float(rng.uniform(0.5, 12.0)), 2),
                "online",
                False,
                np.nan,
                burst,
                burst + int(rng.integers(2, 20)),
            ]
            out.loc[i, "merchant_category"] = str(rng.choice(["online_services", "retail", "entertainment", "grocery"]))
        elif k == "account_takeover":
            out.loc[i, ["amount", "channel", "card_present", "hour", "distance_from_home_km"]] = [
                round(float(rng.lognormal(5.2, 0.8)), 2),
                "online",
                False,
                int(rng.choice([0, 1, 2, 3, 4, 5, 22, 23])) if rng.random() < 0.6 else int(rng.integers(8, 22)),
                round(float(rng.lognormal(5.0, 1.5)), 1),
            ]
            out.loc[i, "merchant_category"] = str(rng.choice(["electronics", "travel", "retail"]))
        elif k == "cross_border":
            out.loc[i, ["amount", "country", "channel", "card_present", "distance_from_home_km"]] = [
                round(float(rng.lognormal(5.6, 0.7)), 2),
                str(rng.choice(_FOREIGN)),
                "pos",
                True,
                round(float(rng.lognormal(7.5, 0.6)), 1),
            ]
        # "quiet": a stolen card used like the owner's own; no detector should be expected to see it
    return out


def make_transactions(n_rows: int = 60_000, fraud_rate: float = 0.005, random_state: int = 0) -> pd.DataFrame:
    """Generate ``n_rows`` transactions with an ``is_fraud`` label (0/1) near ``fraud_rate``.

    Columns: ``transaction_id``, ``timestamp``, ``amount``, ``merchant_category``,
    ``country``, ``channel`` (pos/online/atm), ``card_present`` (bool), ``hour``,
    ``distance_from_home_km`` (missing for half the online purchases: no geolocation),
    ``txn_count_1h``, ``txn_count_24h``, ``is_fraud``. About 15% of the fraud is
    "quiet" (indistinguishable from the cardholder's own use), so recall is bounded,
    as it is on real data.
    """
    rng = np.random.default_rng(random_state)
    n_fraud = round(n_rows * fraud_rate)
    normal = _normal_rows(rng, n_rows - n_fraud).assign(**{LABEL_COLUMN: 0})
    fraud = _fraud_rows(rng, n_fraud).assign(**{LABEL_COLUMN: 1})
    df = pd.concat([normal, fraud], ignore_index=True)
    df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    start = np.datetime64("2026-01-01T00:00:00")
    day = np.sort(rng.integers(0, 90, len(df)))
    seconds = day * 86400 + df["hour"].to_numpy(dtype=np.int64) * 3600 + rng.integers(0, 3600, len(df))
    df.insert(0, "timestamp", pd.to_datetime(start + seconds.astype("timedelta64[s]")))
    df.insert(0, "transaction_id", [f"T{i:08d}" for i in range(len(df))])
    return df.astype(
        {
            "card_present": bool,
            "hour": np.int64,
            "txn_count_1h": np.int64,
            "txn_count_24h": np.int64,
            "amount": float,
            "distance_from_home_km": float,
        }
    )
