"""Thread choice: from the work and the CPUs this process may use, with one override."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fraudvae import VAEDetector
from fraudvae.exceptions import ConfigurationError
from fraudvae.model.threads import ENV_VAR, FLOPS_PER_THREAD, available_cpus, choose_threads, torch_threads

CPUS = len(os.sched_getaffinity(0))


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_affinity_is_honoured() -> None:
    script = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from fraudvae.model.threads import available_cpus; print(available_cpus())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "50000 100000\n"}, 1),  # half a CPU: one thread
        ({"cpu.max": "150000 100000\n"}, min(2, CPUS)),  # 1.5 CPUs round up, within the affinity
        ({"cpu.max": "max 100000\n"}, CPUS),  # no quota
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, CPUS),
        ({}, CPUS),
    ],
)
def test_a_cgroup_quota_caps_the_cpus(tmp_path: Path, files: dict[str, str], expected: int) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert available_cpus(tmp_path) == expected
    assert choose_threads(1e15, cgroup_root=str(tmp_path)) == expected  # big work: every CPU allowed


def test_small_work_runs_on_one_thread() -> None:
    assert choose_threads(FLOPS_PER_THREAD / 2) == 1
    assert choose_threads(2 * FLOPS_PER_THREAD) == min(2, available_cpus())


def test_override_from_python_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_threads(1.0, n_jobs=3) == 3
    monkeypatch.setenv(ENV_VAR, "2")
    assert choose_threads(1.0) == 2
    assert choose_threads(1.0, n_jobs=1) == 1  # Python wins over the environment
    monkeypatch.setenv(ENV_VAR, "lots")
    with pytest.raises(ConfigurationError, match=f"{ENV_VAR}='lots' is invalid"):
        choose_threads(1.0)
    with pytest.raises(ConfigurationError, match="n_jobs=0 is invalid"):
        choose_threads(1.0, n_jobs=0)


def _threads_during_fit(monkeypatch: pytest.MonkeyPatch, env: str | None = None, **params: object) -> set[int]:
    if env is not None:
        monkeypatch.setenv(ENV_VAR, env)
    seen: set[int] = set()
    X = np.random.default_rng(0).normal(size=(300, 6))
    VAEDetector(random_state=0, max_epochs=2, **params).fit(
        X, epoch_callback=lambda log: seen.add(torch.get_num_threads())
    )
    return seen


def test_fit_uses_the_chosen_threads_and_restores_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    assert _threads_during_fit(monkeypatch) == {1}  # small work
    assert _threads_during_fit(monkeypatch, n_jobs=3) == {3}
    assert _threads_during_fit(monkeypatch, env="2") == {2}
    assert torch.get_num_threads() == before


def test_n_jobs_is_not_saved_with_the_model(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(300, 6))
    VAEDetector(random_state=0, max_epochs=1, n_jobs=3).fit(X).save(str(tmp_path / "m"))
    assert VAEDetector.load(str(tmp_path / "m")).n_jobs is None


def test_cli_threads_sets_the_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fraudvae.cli import main

    monkeypatch.setenv(ENV_VAR, "")  # recorded, so the value main() sets is undone after the test
    data = tmp_path / "x.csv"
    data.write_text("a,b\n" + "".join(f"{i % 7},{(i * 3) % 11}\n" for i in range(200)))
    assert (
        main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "1", "--quiet", "--threads", "3"])
        == 0
    )
    assert os.environ[ENV_VAR] == "3"
    with pytest.raises(SystemExit):
        main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--threads", "0"])


def test_torch_threads_restores_on_error() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
        raise RuntimeError
    assert torch.get_num_threads() == before
