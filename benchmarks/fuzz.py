"""Long fuzzing run of every way in: the fuzz tests with many more examples.

``make test`` runs each fuzz test with a bounded number of examples (150 for the HTTP
bodies; a sixth of that for whole files). This script runs the same tests with
``FRAUDVAE_FUZZ_EXAMPLES`` raised (default 3000) and reports, per path, how many inputs
were tried and how many failed, from Hypothesis' own statistics; the table goes into
BENCHMARKS.md. The stored corpus (``tests/corpus/hostile_cells.json``) is part of every
strategy, so regression seeds are always among the inputs.

Paths: JSON bodies of every endpoint generated from the OpenAPI schema (schemathesis),
raw bytes and fuzzed CSV cells to ``/batch_score``, CSV and Parquet files through the
batch job, and training files through reading and type inference.

Run:  .venv/bin/python benchmarks/fuzz.py [--examples 3000]   (about 20-40 minutes)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.markdown import replace_section

ROOT = Path(__file__).resolve().parents[1]
TESTS = {
    "JSON bodies of every endpoint (OpenAPI, schemathesis)": "tests/test_service_fuzz.py::test_operation_conforms_to_its_schema",
    "raw bytes to /batch_score (CSV and JSON)": "tests/test_hostile_input.py::test_fuzz_raw_bytes_to_batch_score",
    "CSV cells to /batch_score": "tests/test_hostile_input.py::test_fuzz_csv_cells_to_batch_score",
    "CSV and Parquet files through `fraudvae score`": "tests/test_hostile_input.py::test_fuzz_batch_files",
    "training files (read and type inference)": "tests/test_hostile_input.py::test_fuzz_training_files",
    "number parser on any text": "tests/test_hostile_input.py::test_parse_numbers_never_fails_on_any_text",
}
_STAT = re.compile(
    r"- during generate phase \(([\d.]+) seconds\):\s*\n\s*- Typical runtimes: .*\n"
    r"\s*- (\d+) passing, (\d+) failing, and (\d+) invalid"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000)
    args = parser.parse_args()
    counts = Path(tempfile.mkstemp(suffix=".tsv")[1])
    env = {**os.environ, "FRAUDVAE_FUZZ_EXAMPLES": str(args.examples), "FRAUDVAE_FUZZ_COUNTS": str(counts)}
    rows = []
    for label, test in TESTS.items():
        started = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics", test],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        stats = _STAT.findall(r.stdout)
        passing = sum(int(s[1]) for s in stats)
        failing = sum(int(s[2]) for s in stats)
        if "schemathesis" in label:  # its Hypothesis loop runs inside the test: the test counts
            passing = sum(int(line.split("\t")[1]) for line in counts.read_text().splitlines())
            failing = 0 if r.returncode == 0 else 1
        tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()[-200:]
        rows.append(f"| {label} | {passing + failing} | {failing} | {seconds:.0f} | {tail} |")
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            f"`FRAUDVAE_FUZZ_EXAMPLES={args.examples}` (files: a sixth of that), one run on 2 cores; inputs are "
            "Hypothesis' generated examples per path (for the OpenAPI row, summed over the 7 operations).",
            "",
            "| path | inputs tried | failing inputs | seconds | pytest |",
            "|---|---:|---:|---:|---|",
            *rows,
        ]
    )
    replace_section(ROOT / "BENCHMARKS.md", "fuzz", table)


if __name__ == "__main__":
    main()
