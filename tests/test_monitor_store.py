"""The monitor store: the score log, labels with history, live windows; SQLite (one machine) and a
real Redis (a fleet), one contract."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from fraudvae.monitor.store import Label, MonitorStore, ScoredEvent
from fraudvae.monitor.stores import open_monitor_store


@pytest.fixture(params=["sqlite", "redis"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives: a SQLite file, or a prefix of its own on the session's real Redis."""
    if request.param == "sqlite":
        return str(tmp_path / "monitor.sqlite")
    return f"{request.getfixturevalue('redis_url')}?prefix=m{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(where: str) -> MonitorStore:
    return open_monitor_store(where)  # type: ignore[no-any-return]


def test_a_label_sent_twice_is_stored_once_and_a_later_one_replaces_it(store: MonitorStore) -> None:
    store.log_scores([ScoredEvent("e1", 5.0, True)], "v1")
    first = store.add_labels([Label("e1", 0, "analyst", 100.0), Label("e1", 0, "analyst", 100.0)])
    assert (first["stored"], first["unchanged"], first["unknown"]) == (1, 1, 0)
    later = store.add_labels([Label("e1", 1, "analyst", 200.0)])
    older = store.add_labels([Label("e1", 0, "analyst", 50.0)])
    assert later["replaced"] == 1 and older["older"] == 1
    current = store.labels()
    assert current[["event_id", "source", "label", "labelled_at"]].values.tolist() == [["e1", "analyst", 1, 200.0]]
    assert store.label_history()["outcome"].tolist() == ["stored", "replaced", "older"]


def test_sources_are_kept_apart_and_the_latest_label_counts(store: MonitorStore) -> None:
    store.log_scores(
        [ScoredEvent("e1", 5.0, True)],
        "v1",
    )
    store.add_labels([Label("e1", 1, "chargeback", 300.0), Label("e1", 0, "analyst", 200.0)])
    assert len(store.labels()) == 2
    assert store.window(3600)["precision"] == 1.0


def test_unknown_event_ids_are_kept_and_reported(store: MonitorStore) -> None:
    out = store.add_labels([Label("nobody", 1, "analyst", 1.0)])
    assert out["unknown"] == 1 and out["unknown_event_ids"] == ["nobody"] and out["stored"] == 1
    assert store.summary()["unknown_labelled_events"] == 1
    store.log_scores([ScoredEvent("nobody", 3.0, False)], "v1")
    assert store.summary()["unknown_labelled_events"] == 0, "a late score finds its label"


def test_labels_survive_reopening_the_store(where: str) -> None:
    first = open_monitor_store(where)
    first.add_labels([Label(f"e{i}", i % 2, "analyst", float(i)) for i in range(50)])
    first.close()
    again = open_monitor_store(where)
    assert len(again.labels()) == 50 and len(again.label_history()) == 50


def test_the_window_matches_an_independent_count(store: MonitorStore) -> None:
    rng = np.random.default_rng(0)
    now = time.time()
    flags = rng.random(400) < 0.1
    fraud = rng.random(400) < 0.05
    store.log_scores([ScoredEvent(f"e{i}", float(i), bool(flags[i]), ("amount",), now - 10) for i in range(400)], "v1")
    store.log_scores([ScoredEvent("old", 1.0, True, (), now - 10 * 86_400)], "v1")
    labelled = rng.random(400) < 0.5
    store.add_labels([Label(f"e{i}", int(fraud[i]), "analyst", now) for i in np.flatnonzero(labelled)])
    day = store.window(86_400, now=now)
    assert day["scored"] == 400 and day["alerts"] == int(flags.sum())
    alerts = flags & labelled
    assert day["labelled_alerts"] == int(alerts.sum())
    assert day["precision"] == pytest.approx(fraud[alerts].mean())
    assert day["recall"] == pytest.approx(flags[labelled & fraud].mean())
    assert day["label_delay_seconds"]["median"] == pytest.approx(10.0, abs=1e-3)
    assert store.window(30 * 86_400, now=now)["scored"] == 401


def test_the_log_is_bounded(where: str) -> None:
    store = open_monitor_store(where, max_rows=100, traffic_rows=10)
    store.log_scores([ScoredEvent(f"e{i}", 1.0, False) for i in range(250)], "v1", rows=[{"x": i} for i in range(250)])
    store.purge()
    kept = store.scores()
    assert len(kept) == 100 and kept["event_id"].iloc[0] == "e150"
    assert store.traffic()["x"].tolist() == list(range(240, 250))


def test_recent_scores_are_the_newest_in_logging_order(store: MonitorStore) -> None:
    store.log_scores([ScoredEvent(f"e{i}", float(i), False) for i in range(50)], "v1")
    assert store.recent_scores(5).tolist() == [45.0, 46.0, 47.0, 48.0, 49.0]
    assert store.recent_scores(500).size == 50


def test_two_servers_on_one_redis_share_the_log_and_the_labels(redis_url: str) -> None:
    """A fleet: scores logged by one server and labels posted to another meet in one window."""
    where = f"{redis_url}?prefix=f{uuid.uuid4().hex[:12]}"
    one, two = open_monitor_store(where), open_monitor_store(where)
    one.log_scores([ScoredEvent("a", 9.0, True), ScoredEvent("b", 1.0, False)], "v1")
    two.log_scores([ScoredEvent("c", 8.0, True)], "v1")
    out = two.add_labels([Label("a", 1, "analyst", time.time()), Label("c", 0, "analyst", time.time())])
    assert out["unknown"] == 0, "an event logged by the other server is known"
    for store in (one, two):
        day = store.window(86_400)
        assert (day["scored"], day["alerts"], day["labelled_alerts"], day["precision"]) == (3, 2, 2, 0.5)


def test_a_redis_that_is_down_answers_with_state_unavailable() -> None:
    from fraudvae.exceptions import StateUnavailableError
    from tests.conftest import free_port

    store = open_monitor_store(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    with pytest.raises(StateUnavailableError, match="nothing was stored"):
        store.add_labels([Label("a", 1, "analyst", 1.0)])


def test_a_fleet_of_two_services_shares_one_redis_monitor(model_dir: Path, redis_url: str) -> None:
    """Two service instances with FRAUDVAE_MONITOR_URL on one Redis: events scored on one, labels
    posted to the other, and GET /monitor on either sees both."""
    from tests.test_service import a_transaction, make_client

    url = f"{redis_url}?prefix=s{uuid.uuid4().hex[:12]}"
    with make_client(model_dir, monitor_url=url) as one, make_client(model_dir, monitor_url=url) as two:
        rows = [a_transaction() | {"event_id": f"e{i}"} for i in range(6)]
        answers = [c.post("/score", json=row).json() for c, row in zip([one, two] * 3, rows, strict=True)]
        labels = [{"event_id": f"e{i}", "label": "fraud" if i % 2 else "legit"} for i in range(6)]
        posted = two.post("/feedback", json=labels)
        assert posted.status_code == 200, posted.text
        assert posted.json()["unknown"] == 0, "events scored by the other server are known"
        for client in (one, two):
            day = client.get("/monitor").json()["windows"]["day"]
            assert day["scored"] == 6 and day["labelled"] == 6
            assert day["alerts"] == sum(a["is_anomaly"] for a in answers)


def test_no_labels_store_nothing(store: MonitorStore) -> None:
    out = store.add_labels([])
    assert (out["stored"], out["unknown"]) == (0, 0) and len(store.labels()) == 0
