"""Online state: per-entity records give the batch job's features bit for bit; the stores
(a real SQLite file, a real redis-server) record each event once, serialize concurrent
writers, expire what no window reaches, and refuse another spec's history."""

from __future__ import annotations

import json
import math
import multiprocessing
import threading
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudvae.datasets.events import DEMO_FEATURE_SPEC
from fraudvae.exceptions import ConfigurationError, StateIncompatibleError, StateUnavailableError
from fraudvae.features.online import entity_records, spec_fingerprint, update_events
from fraudvae.features.spec import parse_spec
from fraudvae.features.stream import compute_features
from fraudvae.state import default_state_url, open_store
from fraudvae.state.store import Seen, Written

SPEC = parse_spec(tomllib.loads(DEMO_FEATURE_SPEC))
STORES = pytest.mark.parametrize("state_url", ["sqlite", "redis"], indirect=True)


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _online(frame: pd.DataFrame, chunk: int, spec=SPEC) -> tuple[pd.DataFrame, dict[str, str]]:
    """The features of ``frame`` fed ``chunk`` events at a time through a dict of records."""
    store: dict[str, str] = {}
    parts = []
    for start in range(0, len(frame), chunk):
        part = frame.iloc[start : start + chunk]
        ids = {r for row in entity_records(part, spec) for r in row if r is not None}
        update = update_events(part, spec, {r: store.get(r) for r in ids})
        store.update(update.records)
        parts.append(update.features)
    return pd.concat(parts), store


@pytest.mark.parametrize(("chunk", "n"), [(1, 800), (7, 2500), (500, 6000)])
def test_online_features_are_the_batch_jobs_bits(card_events: pd.DataFrame, chunk: int, n: int) -> None:
    events = card_events.iloc[:n]
    offline = compute_features(events, SPEC).to_numpy()
    online, _ = _online(events, chunk)
    assert _bits_equal(online.to_numpy(), offline)


def test_ties_are_not_each_others_past() -> None:
    """Two events of one card at one instant: neither counts the other, in one request or two."""
    spec = parse_spec(
        {"time": {"column": "t", "unit": "s"}, "entity": [{"keys": ["card"], "windows": ["60s", "all"], "count": True}]}
    )
    frame = pd.DataFrame({"card": ["a", "a", "a"], "t": [10.0, 20.0, 20.0]})
    for chunk in (1, 3):
        online, _ = _online(frame, chunk, spec)
        assert online["card:count_60s"].tolist() == [0.0, 1.0, 1.0]
        assert _bits_equal(online.to_numpy(), compute_features(frame, spec).to_numpy())


def test_a_late_event_is_scored_just_after_its_entitys_newest_event_and_recorded() -> None:
    """The documented rule: a late event's past is what was recorded when it arrived; its
    windows end just after the entity's newest event; it is recorded, earlier answers stand."""
    spec = parse_spec(
        {
            "time": {"column": "t", "unit": "s"},
            "entity": [{"keys": ["card"], "windows": ["60s", "all"], "count": True, "sum": ["x"]}],
        }
    )
    first = pd.DataFrame({"card": ["a", "a"], "t": [100.0, 200.0], "x": [1.0, 2.0]})
    _, store = _online(first, 2, spec)
    late = pd.DataFrame({"card": ["a"], "t": [150.0], "x": [4.0]})
    update = update_events(late, spec, {"card\x1fa": store["card\x1fa"]})
    assert update.late.tolist() == [True]
    at_newest = update_events(late.assign(t=np.nextafter(200.0, np.inf)), spec, {"card\x1fa": store["card\x1fa"]})
    assert _bits_equal(update.features.to_numpy(), at_newest.features.to_numpy())
    assert update.features["card:count_all"].tolist() == [2.0]
    after = update_events(pd.DataFrame({"card": ["a"], "t": [210.0], "x": [8.0]}), spec, update.records)
    assert after.features["card:count_all"].tolist() == [3.0]  # the late event was recorded
    assert after.features["card:sum_x_60s"].tolist() == [6.0]  # at t=200: 2 + 4
    assert not after.late.any()


def test_records_keep_only_what_a_window_can_reach(card_events: pd.DataFrame) -> None:
    """Bounded: a card keeps its events inside the longest finite window before its newest
    event (24h in the demo spec) plus a fixed summary; older events expire and are counted."""
    events = card_events.iloc[:3000]
    _, store = _online(events, 50)
    expired = 0
    for rid, text in store.items():
        doc = json.loads(text)
        name = rid.partition("\x1f")[0]
        span = 86400.0 if name == "card_id" else 3600.0
        assert all(t >= doc["newest"] - span for t in doc["tail"]["t"]), rid
        assert set(doc["totals"]) >= {"n", "last"}
    whole = update_events(events, SPEC, {})
    expired = whole.expired
    assert expired > 0
    kept = sum(len(json.loads(t)["tail"]["t"]) for t in whole.records.values())
    assert kept + expired == sum(events[c].notna().sum() for c in ("card_id", "device_id"))


def test_a_record_survives_json_to_the_bit() -> None:
    spec = parse_spec(
        {
            "time": {"column": "t", "unit": "s"},
            "entity": [{"keys": ["k"], "windows": ["10s", "all"], "std": ["x"], "max": ["x"], "mean": ["x"]}],
        }
    )
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"k": ["a"] * 40, "t": np.arange(40.0), "x": rng.normal(1e6, 1e-3, 40)})
    frame.loc[5, "x"] = np.nan
    online, _ = _online(frame, 1, spec)
    assert _bits_equal(online.to_numpy(), compute_features(frame, spec).to_numpy())


# ---------------------------------------------------------------------- the stores
def _work(record_id: str, event_id: str):
    """A transaction that counts its event into one record (a JSON counter)."""

    def work(records: dict[str, str | None], seen: dict[str, Seen]) -> Written:
        if event_id in seen:
            return Written()
        n = json.loads(records[record_id] or "0") + 1
        return Written({record_id: json.dumps(n)}, {event_id: json.dumps({"f": [n], "late": False})})

    return work


@STORES
def test_an_event_id_counts_once(state_url: str) -> None:
    store = open_store(state_url)
    for _ in range(3):
        store.transact(["e\x1fa"], ["ev1"], _work("e\x1fa", "ev1"))
    assert store.read(["e\x1fa"]) == {"e\x1fa": "1"}
    assert store.counts() == {"entities": 1, "events": 1, "expiries": 0}
    assert store.seen(["ev1", "nope"]) == {"ev1": Seen(json.dumps({"f": [1], "late": False}), None)}
    store.put_results({"ev1": "first"})
    store.put_results({"ev1": "second"})  # the first answer stands
    assert store.seen(["ev1"])["ev1"].result == "first"
    store.clear()
    assert store.counts() == {"entities": 0, "events": 0, "expiries": 0} and store.read(["e\x1fa"]) == {"e\x1fa": None}
    store.close()


@STORES
def test_concurrent_writers_of_one_entity_lose_no_update(state_url: str) -> None:
    """16 threads, 25 events each, all on one entity: the count is exact."""
    store = open_store(state_url)
    errors: list[BaseException] = []

    def client(c: int) -> None:
        own = open_store(state_url)
        try:
            for i in range(25):
                own.transact(["e\x1fhot"], [f"{c}-{i}"], _work("e\x1fhot", f"{c}-{i}"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.read(["e\x1fhot"]) == {"e\x1fhot": "400"}
    assert store.counts()["events"] == 400


def _process_client(url: str, c: int) -> None:
    store = open_store(url)
    for i in range(40):
        store.transact(["e\x1fhot"], [f"p{c}-{i}"], _work("e\x1fhot", f"p{c}-{i}"))


@pytest.mark.slow  # spawns processes
@STORES
def test_concurrent_processes_of_one_entity_lose_no_update(state_url: str) -> None:
    """As two uvicorn workers would: separate processes, separate connections, one entity."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_client, args=(state_url, c)) for c in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert open_store(state_url).read(["e\x1fhot"]) == {"e\x1fhot": "120"}


@STORES
def test_a_store_of_another_spec_is_refused(state_url: str) -> None:
    store = open_store(state_url)
    store.bind(spec_fingerprint(SPEC))
    store.bind(spec_fingerprint(SPEC))  # the same spec reuses it
    other = parse_spec({"time": {"column": "timestamp"}, "entity": [{"keys": ["card_id"], "count": True}]})
    with pytest.raises(StateIncompatibleError, match="another feature spec"):
        store.bind(spec_fingerprint(other))


def test_an_unreachable_redis_is_unavailable_not_a_crash() -> None:
    from tests.conftest import free_port

    store = open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StateUnavailableError, match="Check that Redis is running"):
        store.ping()
    with pytest.raises(StateUnavailableError):
        store.transact(["e\x1fa"], ["x"], _work("e\x1fa", "x"))


def test_an_unwritable_sqlite_folder_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateUnavailableError, match="writable"):
        open_store(f"sqlite:///{blocker}/state.sqlite")


@pytest.mark.parametrize(
    ("url", "needle"),
    [("postgres://x/y", "unknown scheme"), ("sqlite://", "not a SQLite URL"), ("redis://h/0?prefix=a*b", "prefix")],
)
def test_a_bad_state_url_is_one_line(url: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        open_store(url)


def test_the_default_store_sits_beside_the_model(tmp_path: Path) -> None:
    assert default_state_url(tmp_path / "m") == f"sqlite:///{tmp_path / 'm.state.sqlite'}"


def test_expired_event_ids_are_forgotten(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}", event_ttl=1e-9)
    store.transact(["e\x1fa"], ["ev"], _work("e\x1fa", "ev"))
    assert store.seen(["ev"]) == {}  # past its retention: a retry would count again
    assert math.isclose(store.event_ttl, 1e-9)


# ---------------------------------------------------------------------- fraudvae state load
def test_state_load_resumes_and_counts_nothing_twice(
    spec_model_dir: Path, card_events: pd.DataFrame, tmp_path: Path
) -> None:
    """A load run again (as after a kill) skips the chunks it committed; the records are the same."""
    from fraudvae.jobs.state_job import load_state

    history = tmp_path / "history.csv"
    card_events.iloc[:1500].drop(columns=["is_fraud"]).to_csv(history, index=False)
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    first = load_state(spec_model_dir, history, url, chunk_rows=400)
    assert first["loaded"] == 1500 and first["skipped_already_loaded"] == 0
    store = open_store(url)
    ids = sorted({r for row in entity_records(card_events.iloc[:1500], SPEC) for r in row if r})
    records = store.read(ids)
    again = load_state(spec_model_dir, history, url, chunk_rows=400)
    assert again["loaded"] == 0 and again["skipped_already_loaded"] == 1500
    assert store.read(ids) == records
    _, expected = _online(card_events.iloc[:1500].drop(columns=["is_fraud"]), 400)
    assert records == {r: expected[r] for r in ids}


def test_state_load_refuses_a_model_without_a_spec_and_unordered_history(
    model_dir: Path, spec_model_dir: Path, card_events: pd.DataFrame, tmp_path: Path
) -> None:
    from fraudvae.exceptions import EventOrderError
    from fraudvae.jobs.state_job import load_state

    history = tmp_path / "h.csv"
    card_events.iloc[:50].iloc[::-1].drop(columns=["is_fraud"]).to_csv(history, index=False)
    with pytest.raises(ConfigurationError, match="has no feature spec"):
        load_state(model_dir, history, f"sqlite:///{tmp_path / 'a.sqlite'}")
    with pytest.raises(EventOrderError, match="line 3"):
        load_state(spec_model_dir, history, f"sqlite:///{tmp_path / 'b.sqlite'}")


def test_regression_an_event_id_past_its_retention_could_not_be_recorded_again(tmp_path: Path) -> None:
    """An id older than the retention but not yet purged is new again: recording it hit the
    old row's primary key (sqlite3.IntegrityError, a 503 for the client) instead of replacing it."""
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}", event_ttl=1e-9)
    store.transact(["e\x1fa"], ["ev"], _work("e\x1fa", "ev"))
    store.transact(["e\x1fa"], ["ev"], _work("e\x1fa", "ev"))
    assert store.read(["e\x1fa"]) == {"e\x1fa": "2"} and store.counts()["events"] == 2
