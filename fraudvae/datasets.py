"""A built-in, seeded synthetic card-transaction dataset for the demo, the notebook and tests.

Normal behaviour is drawn per cardholder (home country, typical spend, active hours);
fraud follows three patterns that fraud teams see every day:

* **card testing**: bursts of tiny online amounts at high velocity;
* **account takeover**: large amounts at odd hours, far from home, on a new channel;
* **cross-border spike**: a card-present purchase abroad, far above the usual spend.

Nothing here is real data; it only needs to look enough like it for the demo to teach.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["LABEL_COLUMN", "make_transactions"]

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


def make_transactions(n_rows: int = 60_000, fraud_rate: float = 0.005, random_state: int = 0) -> pd.DataFrame:
    """Generate ``n_rows`` transactions with an ``is_fraud`` label (0/1) near ``fraud_rate``.

    Columns: ``transaction_id``, ``timestamp``, ``amount``, ``merchant_category``,
    ``country``, ``channel`` (pos/online/atm), ``card_present`` (bool), ``hour``,
    ``distance_from_home_km`` (missing for online purchases without geolocation),
    ``txn_count_1h``, ``txn_count_24h``, ``is_fraud``.
    """
    rng = np.random.default_rng(random_state)
    n_fraud = round(n_rows * fraud_rate)
    n_norm = n_rows - n_fraud
    # ---- normal behaviour
    mcc = rng.choice(_MCC, size=n_norm, p=_MCC_P)
    base = np.array([_MCC_SPEND[m] for m in mcc])
    amount = np.round(base * rng.lognormal(0.0, 0.6, n_norm), 2)
    home = rng.choice(_COUNTRIES, size=n_norm, p=[0.45, 0.12, 0.1, 0.09, 0.07, 0.07, 0.05, 0.05])
    travelling = rng.random(n_norm) < 0.03
    country = np.where(travelling, rng.choice(_COUNTRIES, size=n_norm), home)
    online = np.isin(mcc, ["online_services", "electronics", "travel"]) & (rng.random(n_norm) < 0.7)
    online |= rng.random(n_norm) < 0.12
    atm = ~online & (rng.random(n_norm) < 0.04)
    channel = np.where(online, "online", np.where(atm, "atm", "pos"))
    amount = np.where(atm, np.round(rng.choice([20, 40, 60, 100, 200], size=n_norm), 2), amount)
    hour = np.clip(np.round(rng.normal(14.5, 3.8, n_norm)), 0, 23).astype(int)
    distance = np.where(travelling, rng.lognormal(6.5, 0.8, n_norm), rng.lognormal(1.8, 0.9, n_norm))
    distance = np.round(distance, 1).astype(float)
    distance[online & (rng.random(n_norm) < 0.5)] = np.nan
    c1 = rng.poisson(0.4, n_norm)
    c24 = c1 + rng.poisson(2.5, n_norm)
    normal = pd.DataFrame(
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
            LABEL_COLUMN: 0,
        }
    )
    # ---- fraud patterns
    kinds = rng.choice(["card_testing", "account_takeover", "cross_border"], size=n_fraud, p=[0.4, 0.35, 0.25])
    rows = []
    for k in kinds:
        if k == "card_testing":
            burst = int(rng.integers(6, 25))
            rows.append(
                {
                    "amount": round(float(rng.uniform(0.5, 3.0)), 2),
                    "merchant_category": str(rng.choice(["online_services", "retail", "entertainment"])),
                    "country": str(rng.choice(_COUNTRIES)),
                    "channel": "online",
                    "card_present": False,
                    "hour": int(rng.integers(0, 24)),
                    "distance_from_home_km": np.nan,
                    "txn_count_1h": burst,
                    "txn_count_24h": burst + int(rng.integers(5, 30)),
                }
            )
        elif k == "account_takeover":
            rows.append(
                {
                    "amount": round(float(rng.lognormal(6.6, 0.5)), 2),
                    "merchant_category": str(rng.choice(["electronics", "travel", "retail"])),
                    "country": str(rng.choice(_COUNTRIES + _FOREIGN)),
                    "channel": "online",
                    "card_present": False,
                    "hour": int(rng.choice([1, 2, 3, 4, 5])),
                    "distance_from_home_km": round(float(rng.lognormal(7.0, 0.7)), 1),
                    "txn_count_1h": int(rng.integers(2, 6)),
                    "txn_count_24h": int(rng.integers(4, 12)),
                }
            )
        else:
            rows.append(
                {
                    "amount": round(float(rng.lognormal(6.9, 0.4)), 2),
                    "merchant_category": str(rng.choice(["electronics", "retail", "entertainment"])),
                    "country": str(rng.choice(_FOREIGN)),
                    "channel": "pos",
                    "card_present": True,
                    "hour": int(rng.integers(8, 23)),
                    "distance_from_home_km": round(float(rng.lognormal(8.3, 0.3)), 1),
                    "txn_count_1h": int(rng.integers(1, 4)),
                    "txn_count_24h": int(rng.integers(3, 9)),
                }
            )
    fraud = pd.DataFrame(rows, columns=[c for c in normal.columns if c != LABEL_COLUMN])
    fraud[LABEL_COLUMN] = 1
    df = pd.concat([normal, fraud], ignore_index=True)
    df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    start = np.datetime64("2026-01-01T00:00:00")
    day = np.sort(rng.integers(0, 90, len(df)))
    ts = start + (day * 86400 + df["hour"].to_numpy() * 3600 + rng.integers(0, 3600, len(df))).astype("timedelta64[s]")
    df.insert(0, "timestamp", pd.to_datetime(ts))
    df.insert(0, "transaction_id", [f"T{i:08d}" for i in range(len(df))])
    df["card_present"] = df["card_present"].astype(bool)
    df["txn_count_1h"] = df["txn_count_1h"].astype(np.int64)
    df["txn_count_24h"] = df["txn_count_24h"].astype(np.int64)
    df["hour"] = df["hour"].astype(np.int64)
    return df
