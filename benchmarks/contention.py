"""Fit time alone and beside one busy neighbour: the chosen thread count against two threads.

Each fit runs in its own process (so torch's thread pool is fresh), idle and then beside one
other process on the same 2-core machine: a plain Python busy loop, or a torch loop of small
matrix products. The ratio to the idle time of the same configuration is what matters: a fair
share of two cores is 2x. ``default`` is what fraudvae chooses (``fraudvae.threads``);
``2 threads`` is torch's own default on this machine, what fraudvae used before.

This covers fitting only; the batch job, ``/score`` under contention and a ``taskset``
restriction are not measured here yet (issue 15).

Run:  .venv/bin/python benchmarks/contention.py      (about 5 minutes)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.markdown import replace_section

ROOT = Path(__file__).resolve().parents[1]
FIT = """
import sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from fraudvae import VAEDetector
rows, cols, jobs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
X = np.random.default_rng(0).normal(size=(rows, cols))
started = time.perf_counter()
VAEDetector(random_state=0, max_epochs=20, n_jobs=None if jobs == "default" else int(jobs)).fit(X)
print(time.perf_counter() - started)
"""
NEIGHBOURS = {
    "Python busy loop": "import time\nend = time.time() + 600\nwhile time.time() < end: pass\n",
    "torch small matmuls": (
        "import time, torch\na = torch.randn(256, 128)\nb = torch.randn(128, 64)\nend = time.time() + 600\n"
        "while time.time() < end: a @ b\n"
    ),
}
SIZES = [(500, 8), (20_000, 30)]


def fit_seconds(rows: int, cols: int, jobs: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", FIT, str(rows), str(cols), jobs], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    lines = [
        "| data | threads | idle s | " + " | ".join(f"beside a {n} (x idle)" for n in NEIGHBOURS) + " |",
        "|---|---|---:|" + "---:|" * len(NEIGHBOURS),
    ]
    for rows, cols in SIZES:
        for jobs in ("default", "2"):
            idle = min(fit_seconds(rows, cols, jobs) for _ in range(2))
            cells = []
            for code in NEIGHBOURS.values():
                neighbour = subprocess.Popen([sys.executable, "-c", code])
                try:
                    time.sleep(1.0)
                    busy = fit_seconds(rows, cols, jobs)
                finally:
                    neighbour.kill()
                    neighbour.wait()
                cells.append(f"{busy:.1f} s ({busy / idle:.1f}x)")
            label = "chosen (1 at these sizes)" if jobs == "default" else "2 (torch's default)"
            lines.append(f"| {rows:,} x {cols} | {label} | {idle:.1f} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    replace_section(ROOT / "BENCHMARKS.md", "contention", "\n".join(lines))


if __name__ == "__main__":
    main()
