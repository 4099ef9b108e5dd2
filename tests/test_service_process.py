"""A real `fraudvae serve` process on a free loopback port, talked to over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import a_transaction

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

FRAUDVAE = str(Path(sys.executable).with_name("fraudvae"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model_dir: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [FRAUDVAE, "serve", "--model", str(model_dir), "--port", str(port)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.communicate()[0]}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"server did not become ready within 60 s: {proc.communicate()[0]}")


@pytest.fixture()
def server(model_dir: Path) -> Iterator[str]:
    proc, url = start_server(model_dir, {"FRAUDVAE_ADMIN_KEY": "admin-secret"})
    yield url
    proc.terminate()
    proc.communicate(timeout=30)  # also closes the pipe


def test_real_server_scores_over_http(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        r = client.post("/score", json=a_transaction())
        assert r.status_code == 200 and r.json()["anomaly_score"] > 0
        r = client.post("/batch_score", json=[a_transaction()] * 5)
        assert r.status_code == 200 and r.json()["summary"]["rows"] == 5
        r = client.post("/score", json=a_transaction() | {"amount": "NaN"})
        assert r.status_code == 422 and "Traceback" not in r.text
        assert "fraudvae_requests_total" in client.get("/metrics").text


def test_reload_under_load_fails_no_request(server: str, model_dir: Path, other_model_dir: Path) -> None:
    """Event-based, no sleeps: each step waits for responses that prove the previous one happened."""
    stop = threading.Event()
    results: list[tuple[int, str]] = []
    answered = threading.Condition()

    def hammer() -> None:
        with httpx.Client(base_url=server, timeout=30) as client:
            while not stop.is_set() and len(results) < 4000:
                r = client.post("/score", json=a_transaction())
                with answered:
                    results.append((r.status_code, r.json().get("model_version", "")))
                    answered.notify_all()

    def wait_for_version(version: str, count: int) -> None:
        """Until ``count`` responses came from ``version`` since now (the reload reached the workers)."""
        start = len(results)
        with answered:
            assert answered.wait_for(lambda: sum(v == version for _, v in results[start:]) >= count, timeout=60)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    with answered:
        assert answered.wait_for(lambda: len(results) >= 20, timeout=60)  # load is on
    with httpx.Client(base_url=server, timeout=60) as admin:
        for target in (other_model_dir, model_dir, other_model_dir):
            r = admin.post("/model/reload", json={"model_dir": str(target)}, headers={"X-API-Key": "admin-secret"})
            assert r.status_code == 200, r.text
            wait_for_version(r.json()["model_version"], 20)
        new_version = r.json()["model_version"]
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert results, "no requests were made"
    assert {code for code, _ in results} == {200}, "a request failed during reload"
    versions = [v for _, v in results]
    assert len(set(versions)) == 2 and versions[-1] == new_version


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "/nonexistent/model"], "FRAUDVAE_MODEL_DIR"),
        ([], "pass --model or set FRAUDVAE_MODEL_DIR"),
    ],
)
def test_bad_model_stops_startup_with_one_line(args: list[str], needle: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDVAE_")}
    out = subprocess.run(
        [FRAUDVAE, "serve", *args, "--port", str(free_port())], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr


def test_corrupt_model_stops_startup(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "weights.safetensors").write_bytes(b"garbage")
    out = subprocess.run(
        [FRAUDVAE, "serve", "--model", str(broken), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "cannot serve" in out.stderr and "truncated or modified" in out.stderr
