"""Built-in, seeded raw card events whose fraud is behavioural (the demo's data since issue 16).

Each event is one card purchase as a processor exports it: ids, time, amount, merchant,
country, device and location, plus the account's opening date and the cardholder's home
coordinates. Normal behaviour is drawn per card (spend level, favourite merchants, home,
one or two devices, active hours). Fraud is planted on cards' timelines, and each pattern
is hard to see in one row alone:

* **card testing**: a burst of 6-12 tiny online purchases within minutes from a device
  that fraudsters share between cards (small amounts are common: app stores, parking);
* **account takeover**: 2-4 purchases within hours from a new device in another country,
  at 2.5-5x the card's usual spend (travel and big spenders exist, so neither alone tells);
* **spend spike**: one purchase at 6-12x the card's usual amount, otherwise ordinary.

Nothing here is real data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["DEMO_FEATURE_SPEC", "make_card_events"]

#: The spec ``fraudvae demo`` trains with (written to the demo directory as ``features.toml``).
DEMO_FEATURE_SPEC = """\
# Behavioural features of the demo's card events (see 'fraudvae features suggest').
[time]
column = "timestamp"

[[entity]]
keys = ["card_id"]
windows = ["10min", "1h", "24h"]
count = true
time_since_previous = true
ratio_to_past_mean = ["amount"]
new_value = ["device_id", "country"]

[[entity]]
keys = ["device_id"]
windows = ["1h", "all"]
count = true
distinct = ["card_id"]

[[row]]
name = "km_from_home"
op = "distance"
columns = ["lat", "lon", "home_lat", "home_lon"]

[[row]]
name = "account_age_seconds"
op = "time_difference"
columns = ["timestamp", "account_opened"]
"""

_CATEGORIES = {  # category: (share of purchases, median amount)
    "grocery": (0.24, 45.0),
    "fuel": (0.12, 50.0),
    "restaurant": (0.16, 35.0),
    "retail": (0.14, 60.0),
    "digital": (0.14, 4.0),
    "electronics": (0.05, 250.0),
    "travel": (0.04, 300.0),
    "pharmacy": (0.06, 25.0),
    "utilities": (0.05, 90.0),
}
_HOMES = {"US": (39.0, -95.0), "GB": (52.5, -1.5), "DE": (51.0, 10.0), "FR": (46.5, 2.5), "CA": (50.0, -100.0)}
_ABROAD = {"BR": (-15.0, -50.0), "NG": (9.0, 8.0), "RU": (56.0, 38.0), "VN": (16.0, 107.0), "MX": (23.0, -102.0)}
_DAYS = 60
_START = np.datetime64("2026-01-01T00:00:00", "s")


def make_card_events(n_events: int = 40_000, fraud_rate: float = 0.015, random_state: int = 0) -> pd.DataFrame:
    """About ``n_events`` card events over 60 days, in time order, with ``is_fraud`` (0/1) near ``fraud_rate``.

    Columns: ``transaction_id``, ``card_id``, ``timestamp``, ``amount``, ``merchant``,
    ``category``, ``country``, ``device_id``, ``lat``, ``lon``, ``home_lat``, ``home_lon``,
    ``account_opened``, ``is_fraud``.
    """
    rng = np.random.default_rng(random_state)
    n_cards = max(20, n_events // 50)
    cats = list(_CATEGORIES)
    merchants = np.array([f"M{i:03d}" for i in range(90)])
    merchant_cat = np.array([cats[i % len(cats)] for i in range(90)])
    card = {
        "spend": rng.normal(0.0, 0.6, n_cards),
        "peak": rng.normal(14.0, 3.0, n_cards),
        "home": rng.choice(list(_HOMES), n_cards, p=[0.6, 0.12, 0.12, 0.08, 0.08]),
        "favourites": rng.integers(0, 90, (n_cards, 6)),
        "devices": np.array([[f"D{rng.integers(10**9, 10**10)}" for _ in range(2)] for _ in range(n_cards)]),
        "opened": _START - (rng.uniform(30, 2500, n_cards) * 86400).astype("timedelta64[s]"),
    }
    n_fraud = round(n_events * fraud_rate)
    rate = rng.gamma(2.0, 1.0, n_cards)
    owner = np.repeat(np.arange(n_cards), rng.multinomial(n_events - n_fraud, rate / rate.sum()))
    events = _purchases(rng, owner, card, merchants, merchant_cat)
    frauds = _frauds(rng, n_fraud, n_cards, card, merchants, merchant_cat)
    frame = pd.concat([events.assign(is_fraud=0), frauds.assign(is_fraud=1)], ignore_index=True)
    frame = frame.sort_values("seconds", kind="stable").reset_index(drop=True)
    frame.insert(0, "timestamp", (_START + frame.pop("seconds").to_numpy().astype("timedelta64[s]")).astype(str))
    frame.insert(0, "card_id", [f"C{c:05d}" for c in frame.pop("card")])
    frame.insert(0, "transaction_id", [f"T{i:08d}" for i in range(len(frame))])
    return frame


def _purchases(
    rng: np.random.Generator, owner: np.ndarray, card: dict[str, np.ndarray], merchants: np.ndarray, cat: np.ndarray
) -> pd.DataFrame:
    n = len(owner)
    favourite = rng.random(n) < 0.8
    merchant = np.where(favourite, card["favourites"][owner, rng.integers(0, 6, n)], rng.integers(0, 90, n))
    category = cat[merchant]
    median = np.array([_CATEGORIES[c][1] for c in category])
    amount = np.round(median * np.exp(card["spend"][owner]) * rng.lognormal(0.0, 0.45, n), 2)
    travel = rng.random(n) < 0.03
    country = np.where(travel, rng.choice(list(_ABROAD) + list(_HOMES), n), card["home"][owner])
    hour = np.clip(rng.normal(card["peak"][owner], 3.0), 0, 23.99)
    seconds = (rng.integers(0, _DAYS, n) * 86400 + hour * 3600).astype(np.int64)
    device = card["devices"][owner, (rng.random(n) < 0.15).astype(int)]
    return _frame(rng, owner, seconds, amount, merchants[merchant], category, country, device, card)


def _frauds(
    rng: np.random.Generator, n: int, n_cards: int, card: dict[str, np.ndarray], merchants: np.ndarray, cat: np.ndarray
) -> pd.DataFrame:
    parts: list[pd.DataFrame] = []
    ring = np.array([f"D{rng.integers(10**9, 10**10)}" for _ in range(6)])  # devices shared by card testers
    digital = np.flatnonzero(cat == "digital")
    done = 0
    while done < n:
        victim = int(rng.integers(0, n_cards))
        start = int(rng.integers(5 * 86400, _DAYS * 86400))
        pattern = rng.choice(["testing", "takeover", "spike"], p=[0.4, 0.35, 0.25])
        usual = np.exp(card["spend"][victim])
        if pattern == "testing":
            k = int(rng.integers(6, 13))
            seconds = start + np.sort(rng.integers(0, 480, k))
            merchant = rng.choice(digital, k)
            amount = np.round(rng.uniform(1.0, 4.0, k), 2)
            country = np.full(k, card["home"][victim])
            device = np.full(k, rng.choice(ring))
        elif pattern == "takeover":
            k = int(rng.integers(2, 5))
            seconds = start + np.sort(rng.integers(0, 3 * 3600, k))
            merchant = rng.integers(0, 90, k)
            median = np.array([_CATEGORIES[c][1] for c in cat[merchant]])
            amount = np.round(median * usual * rng.uniform(2.5, 5.0, k), 2)
            country = np.full(k, rng.choice([c for c in _ABROAD]))
            device = np.full(k, f"D{rng.integers(10**9, 10**10)}")
        else:
            k = 1
            seconds = np.array([start])
            merchant = card["favourites"][victim, rng.integers(0, 6, 1)]
            median = np.array([_CATEGORIES[c][1] for c in cat[merchant]])
            amount = np.round(median * usual * rng.uniform(6.0, 12.0, 1), 2)
            country = np.array([card["home"][victim]])
            device = np.array([card["devices"][victim, 0]])
        owner = np.full(k, victim)
        parts.append(_frame(rng, owner, seconds, amount, merchants[merchant], cat[merchant], country, device, card))
        done += k
    return pd.concat(parts, ignore_index=True).head(n)


def _frame(
    rng: np.random.Generator,
    owner: np.ndarray,
    seconds: np.ndarray,
    amount: np.ndarray,
    merchant: np.ndarray,
    category: np.ndarray,
    country: np.ndarray,
    device: np.ndarray,
    card: dict[str, np.ndarray],
) -> pd.DataFrame:
    n = len(owner)
    places = {**_HOMES, **_ABROAD}
    home = np.array([places[c] for c in card["home"][owner]]).reshape(n, 2)
    here = np.array([places[c] for c in country]).reshape(n, 2) + rng.normal(0, 0.3, (n, 2))
    return pd.DataFrame(
        {
            "card": owner,
            "seconds": seconds,
            "amount": amount,
            "merchant": merchant,
            "category": category,
            "country": country,
            "device_id": device,
            "lat": here[:, 0].round(4),
            "lon": here[:, 1].round(4),
            "home_lat": home[:, 0],
            "home_lon": home[:, 1],
            "account_opened": card["opened"][owner].astype("datetime64[D]").astype(str),
        }
    )
