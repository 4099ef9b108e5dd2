"""Online equals offline: raw events replayed over HTTP to a real ``fraudvae serve`` score
bit-identically to ``fraudvae score --history`` on the same file, with SQLite and with Redis,
1 and 2 uvicorn workers, 16 concurrent clients (each entity's events kept in order), and
across a SIGKILL of the whole server in the middle of the replay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from fraudvae.datasets.events import make_card_events
from fraudvae.features.online import entity_records
from fraudvae.features.spec import FeatureSpec, load_spec
from fraudvae.state import open_store
from tests.conftest import fraudvae_cli, free_port

pytestmark = pytest.mark.slow  # real servers, 20,000-event replays

FRAUDVAE = str(Path(sys.executable).with_name("fraudvae"))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "entity" / "banksim_dev.csv.gz"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """A ``fraudvae`` command (train, score, state load) through the CLI's ``main`` here; the server is a process."""
    out = fraudvae_cli(*args)
    assert out.returncode == 0, out.stderr
    return out


class Server:
    """``fraudvae serve`` in its own process group (SIGKILL takes the workers too)."""

    def __init__(self, model: Path, state_url: str, workers: int, env: dict[str, str], log: Path) -> None:
        self.args = [FRAUDVAE, "serve", "--model", str(model), "--workers", str(workers), "--state", state_url]
        self.env = {**os.environ, "FRAUDVAE_LOG_LEVEL": "warning", **env}
        self.log = log
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        port = free_port()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.args, "--port", str(port)], env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    self.url = url
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=60)


class Replay:
    """16 clients send events in batches (``batch=None``: one event a ``/score`` request); an
    event goes only once every earlier event of each of its entities is acknowledged (or rides
    earlier in the same batch)."""

    def __init__(self, bodies: list[dict[str, Any]], records: list[list[str | None]], batch: int | None = 48) -> None:
        self.bodies, self.n = bodies, len(bodies)
        self.batch, self.single = batch or 1, batch is None
        last: dict[str, int] = {}
        self.prev: list[list[int]] = []
        for i, ids in enumerate(records):
            self.prev.append([last[r] for r in ids if r is not None and r in last])
            for r in ids:
                if r is not None:
                    last[r] = i
        self.done = np.zeros(self.n, dtype=bool)
        self.claimed = np.zeros(self.n, dtype=bool)
        self.lo = 0
        self.answers: dict[int, dict[str, Any]] = {}
        self.cond = threading.Condition()
        self.errors: list[str] = []

    def _claim(self) -> list[int] | None:
        with self.cond:
            while True:
                while self.lo < self.n and self.done[self.lo]:
                    self.lo += 1
                if self.lo == self.n or self.errors:
                    return None
                chosen: list[int] = []
                inside: set[int] = set()
                for i in range(self.lo, min(self.n, self.lo + 4000)):
                    if len(chosen) == self.batch:
                        break
                    if not self.claimed[i] and all(self.done[p] or p in inside for p in self.prev[i]):
                        chosen.append(i)
                        inside.add(i)
                if chosen:
                    self.claimed[chosen] = True
                    return chosen
                self.cond.wait(1.0)

    def _client(self, server: Server) -> None:
        with httpx.Client(timeout=60) as client:
            while (chosen := self._claim()) is not None:
                while True:
                    try:
                        if self.single:
                            r = client.post(f"{server.url}/score", json=self.bodies[chosen[0]])
                        else:
                            r = client.post(f"{server.url}/batch_score", json=[self.bodies[i] for i in chosen])
                    except httpx.TransportError:  # the server is being restarted: retry, same ids
                        time.sleep(0.2)
                        continue
                    if r.status_code == 503:
                        time.sleep(0.2)
                        continue
                    break
                with self.cond:
                    if r.status_code != 200:
                        self.errors.append(f"{r.status_code}: {r.text[:500]}")
                    else:
                        results = [r.json()] if self.single else r.json()["results"]
                        for i, answer in zip(chosen, results, strict=True):
                            self.answers[i] = answer
                        self.done[chosen] = True
                    self.cond.notify_all()

    def run(self, server: Server, clients: int = 16, kill_at: int | None = None) -> None:
        threads = [threading.Thread(target=self._client, args=(server,)) for _ in range(clients)]
        for t in threads:
            t.start()
        if kill_at is not None:
            while int(self.done.sum()) < kill_at and not self.errors:
                time.sleep(0.05)
            server.stop(signal.SIGKILL)  # mid-replay: requests in flight lose their connection
            server.start()
        for t in threads:
            t.join()
        assert self.errors == []
        assert self.done.all()


def _bodies(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


@pytest.fixture(scope="module")
def demo_stream(spec_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """24,000 demo events in time order: 4,000 of history and 20,000 to replay, scored offline."""
    root = tmp_path_factory.mktemp("demo_stream")
    events = make_card_events(24_000, random_state=5).sort_values("timestamp", kind="stable")
    events = events.drop(columns=["is_fraud"]).reset_index(drop=True)
    events.iloc[:4000].to_csv(root / "history.csv", index=False)
    day = events.iloc[4000:]
    day.to_csv(root / "day.csv", index=False)
    _run(
        "score", "--model", str(spec_model_dir), "--input", str(root / "day.csv"), "--history",
        str(root / "history.csv"), "--output", str(root / "offline.parquet"), "--keep-columns", "transaction_id",
    )  # fmt: skip
    offline = pd.read_parquet(root / "offline.parquet")
    spec = load_spec_of(spec_model_dir)
    return {
        "root": root,
        "model": spec_model_dir,
        "bodies": _bodies(day),
        "records": entity_records(day.reset_index(drop=True), spec),
        "offline": offline["anomaly_score"].to_numpy(),
        "ids": day["transaction_id"].tolist(),
        "env": {"FRAUDVAE_EVENT_ID_COLUMN": "transaction_id"},
    }


def load_spec_of(model: Path) -> FeatureSpec:
    from fraudvae.detection.detector import VAEDetector
    from fraudvae.features.behaviour import model_spec

    spec = model_spec(VAEDetector.load(str(model)).extra_documents_)
    assert spec is not None
    return spec


def _replay(stream: dict[str, Any], state_url: str, workers: int, tmp: Path, kill_at: int | None = None) -> Replay:
    loaded = json.loads(
        _run("state", "load", "--model", str(stream["model"]), "--data", str(stream["root"] / "history.csv"),
             "--state", state_url, "--quiet").stdout
    )  # fmt: skip
    assert loaded["loaded"] == 4000 or "history" not in stream["root"].name
    server = Server(stream["model"], state_url, workers, stream["env"], tmp / "server.log").start()
    replay = Replay(stream["bodies"], stream["records"])
    try:
        replay.run(server, kill_at=kill_at)
    finally:
        server.stop()
    return replay


def _assert_offline_bits(replay: Replay, offline: np.ndarray) -> None:
    online = np.array([replay.answers[i]["anomaly_score"] for i in range(replay.n)])
    differ = np.flatnonzero(online != offline)
    assert len(differ) == 0, f"{len(differ)} of {replay.n} scores differ, first at event {differ[:5]}"


@pytest.mark.parametrize(("state_url", "workers"), [("sqlite", 1), ("redis", 2)], indirect=["state_url"])
def test_replayed_demo_events_score_as_the_batch_job_does(
    demo_stream: dict[str, Any], state_url: str, workers: int, tmp_path: Path
) -> None:
    """20,000 events; SQLite with one worker, Redis with two (the SIGKILL test below crosses them)."""
    replay = _replay(demo_stream, state_url, workers, tmp_path)
    _assert_offline_bits(replay, demo_stream["offline"])
    assert not any(a["late"] or a["replayed"] for a in replay.answers.values())
    assert [replay.answers[i]["event_id"] for i in range(replay.n)] == demo_stream["ids"]
    counts = open_store(state_url).counts()
    assert counts["events"] == replay.n


def test_single_event_requests_of_16_clients_are_batched_and_score_as_the_batch_job_does(
    demo_stream: dict[str, Any], tmp_path: Path
) -> None:
    """One event a ``/score`` request: the requests that wait together are scored as one batch
    (service/coalesce.py), and every score is still the batch job's."""
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    _run("state", "load", "--model", str(demo_stream["model"]), "--data", str(demo_stream["root"] / "history.csv"),
         "--state", url, "--quiet")  # fmt: skip
    n = 2000
    server = Server(demo_stream["model"], url, 1, demo_stream["env"], tmp_path / "server.log").start()
    replay = Replay(demo_stream["bodies"][:n], demo_stream["records"][:n], batch=None)
    try:
        replay.run(server)
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    _assert_offline_bits(replay, demo_stream["offline"][:n])
    assert [replay.answers[i]["event_id"] for i in range(n)] == demo_stream["ids"][:n]
    passes = {
        line.split()[0]: float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith(("fraudvae_score_pass_requests_count", "fraudvae_score_pass_requests_sum"))
    }
    assert passes["fraudvae_score_pass_requests_sum"] == n
    assert passes["fraudvae_score_pass_requests_count"] < n  # some passes answered several requests


@pytest.mark.parametrize(("state_url", "workers"), [("sqlite", 2), ("redis", 1)], indirect=["state_url"])
def test_a_sigkilled_server_loses_no_acknowledged_event_and_counts_none_twice(
    demo_stream: dict[str, Any], state_url: str, workers: int, tmp_path: Path
) -> None:
    """SIGKILL of the server (and its workers) after 1,500 acknowledged events of 5,000;
    restarted, the clients retry what was in flight with the same ids. Every event is in the
    store exactly once and every score, before and after the restart, is the batch job's."""
    first = {**demo_stream, "bodies": demo_stream["bodies"][:5000], "records": demo_stream["records"][:5000]}
    replay = _replay(first, state_url, workers, tmp_path, kill_at=1500)
    _assert_offline_bits(replay, demo_stream["offline"][:5000])
    store = open_store(state_url)
    assert store.counts()["events"] == replay.n
    assert len(store.seen(demo_stream["ids"][:5000])) == replay.n


@pytest.fixture(scope="module")
def banksim_stream(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """BankSim's dev half, its first 25,000 events (time order by step): a model with a
    customer spec trained on the first 5,000, then 5,000 of history and 20,000 replayed.
    The events carry no id column: each request names its event with "event_id"."""
    assert SHARED.exists(), f"expected BankSim at {SHARED}"
    root = tmp_path_factory.mktemp("banksim_stream")
    frame = pd.read_csv(SHARED, nrows=25_000)
    frame.iloc[:5000].to_csv(root / "train.csv", index=False)
    (root / "spec.toml").write_text(
        '[time]\ncolumn = "step"\nunit = "d"\n\n[[entity]]\nkeys = ["customer"]\nwindows = ["1d", "7d", "all"]\n'
        'count = true\nsum = ["amount"]\nmax = ["amount"]\ndistinct = ["merchant"]\ntime_since_previous = true\n'
        'ratio_to_past_mean = ["amount"]\nnew_value = ["merchant", "category"]\n'
    )
    _run(
        "train", "--data", str(root / "train.csv"), "--out", str(root / "model"), "--features",
        str(root / "spec.toml"), "--label-column", "fraud", "--normal-value", "0", "--drop-columns", "step",
        "--time-column", "step", "--epochs", "4", "--no-compare", "--quiet",
    )  # fmt: skip
    events = frame.drop(columns=["fraud"])
    events.iloc[:5000].to_csv(root / "history.csv", index=False)
    day = events.iloc[5000:]
    day.to_csv(root / "day.csv", index=False)
    _run(
        "score", "--model", str(root / "model"), "--input", str(root / "day.csv"), "--history",
        str(root / "history.csv"), "--output", str(root / "offline.parquet"),
    )  # fmt: skip
    bodies = [{**b, "event_id": f"bs-{i}"} for i, b in enumerate(_bodies(day))]
    return {
        "root": root,
        "model": root / "model",
        "bodies": bodies,
        "records": entity_records(day.reset_index(drop=True), load_spec(root / "spec.toml")),
        "offline": pd.read_parquet(root / "offline.parquet")["anomaly_score"].to_numpy(),
        "env": {},
    }


@pytest.mark.parametrize("state_url", ["redis"], indirect=True)
def test_replayed_banksim_events_score_as_the_batch_job_does(
    banksim_stream: dict[str, Any], state_url: str, tmp_path: Path
) -> None:
    replay = _replay(banksim_stream, state_url, 2, tmp_path)
    _assert_offline_bits(replay, banksim_stream["offline"])
