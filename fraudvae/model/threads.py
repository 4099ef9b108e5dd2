"""How many threads torch may use: chosen from the work and from the CPUs this process may use.

torch sizes its pool by the host's cores. On a shared machine that is the wrong number
twice over: the process may be allowed fewer CPUs (an affinity mask from ``taskset`` or a
container's cgroup quota, ``cpu.max``), and for the small matrix products of this model
(batches of at most 256 rows through layers of 256 and 128 units) a second thread saves
little when the machine is idle and costs several-fold when another process holds a core:
OpenMP threads wait at a barrier for the one that was descheduled. Measured on 2 cores: a
500 x 8 fit took 1.4 s on one thread and 1.5 s on two when idle, and 1.4 s vs 5.6 s beside
a plain Python busy loop; 20,000 x 30, 4.9 s vs 4.7 s idle.

So work runs on one thread unless its matrix products are large enough to split
(:data:`FLOPS_PER_THREAD` per step), and never on more threads than the CPUs available.
One override, in this order: ``n_jobs`` in Python, ``FRAUDVAE_TORCH_THREADS`` in the
environment (the CLI's ``--threads`` sets it). Scores do not depend on the thread count
(``fraudvae.model.scoring``); trained weights, like on another CPU type, may.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from fraudvae.exceptions import ConfigurationError

__all__ = ["ENV_VAR", "FLOPS_PER_THREAD", "available_cpus", "choose_threads", "torch_threads"]

ENV_VAR = "FRAUDVAE_TORCH_THREADS"
#: Floating-point operations per step below which a further thread does not pay.
FLOPS_PER_THREAD = 200e6


def available_cpus(cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup") -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (v2 or v1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(Path(cgroup_root))
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_quota(root: Path) -> float | None:
    """The CPU quota in CPUs (``cpu.max``: "QUOTA PERIOD", or cgroup v1's cfs files), if any."""
    try:
        text = (root / "cpu.max").read_text().split()
        if len(text) == 2 and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def requested_threads(n_jobs: int | None) -> int | None:
    """The override, if any: ``n_jobs``, else ``FRAUDVAE_TORCH_THREADS``; ``None`` means choose."""
    if n_jobs is not None:
        value, source = n_jobs, f"n_jobs={n_jobs!r}"
    else:
        raw = os.environ.get(ENV_VAR, "").strip()
        if not raw:
            return None
        source = f"{ENV_VAR}={raw!r}"
        try:
            value = int(raw)
        except ValueError:
            value = 0
    if not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{source} is invalid; expected a positive number of threads, or unset to choose.")
    return value


def choose_threads(flops_per_step: float, n_jobs: int | None = None, cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Threads for work of ``flops_per_step`` per step (one per :data:`FLOPS_PER_THREAD`), within the CPUs."""
    requested = requested_threads(n_jobs)
    if requested is not None:
        return requested
    wanted = max(1, int(flops_per_step // FLOPS_PER_THREAD))
    return min(wanted, available_cpus(cgroup_root))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with torch on ``n`` threads, then restore the previous count.

    torch's setting is process-wide: code running torch in other threads meanwhile shares it.
    """
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)
