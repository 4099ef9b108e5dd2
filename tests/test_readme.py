"""The README's commands run as written: every ```sh block, in order, in one bash session.

`make test` (the ```sh-ci block) is what CI runs; here we check .ci/run runs exactly it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{re.escape(lang)}\n(.*?)^```", README, flags=re.M | re.S)


def test_ci_runs_the_readme_test_command() -> None:
    assert blocks("sh-ci") == ["make test\n"]
    commands = [
        ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith(("#", "set ", "cd "))
    ]
    assert commands == ["make test"]


def test_every_fraudvae_variable_is_documented() -> None:
    from fraudvae_service.settings import Settings

    for name in Settings.model_fields:
        assert f"`FRAUDVAE_{name.upper()}`" in README, f"FRAUDVAE_{name.upper()} is not in the README"


def test_readme_shell_blocks_run(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "".join(blocks("sh"))
    assert "make demo" in script and "fraudvae serve" in script
    for d in ("models", "reports", "scored"):
        shutil.rmtree(ROOT / d, ignore_errors=True)
    out = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"},
    )
    try:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        # make demo wrote its data, spec, model and report (the report's rendering is
        # tests/test_report_browser.py's).
        demo = ROOT / "demo_output"
        for name in ("transactions.csv", "events.csv", "features.toml", "model/manifest.json"):
            assert (demo / name).stat().st_size > 0, name
        for name in ("report.html", "report.json", "scores.csv"):
            assert (demo / "report" / name).stat().st_size > 0, name
        assert "FRAUDVAE_EVENT_ID_COLUMN=transaction_id fraudvae serve --model" in out.stdout  # make demo ends so
        assert (ROOT / "reports" / "cards" / "report.html").exists()
        assert (ROOT / "scored" / "cards.parquet").exists() and (ROOT / "scored" / "cards_spark.parquet").is_dir()
        # The responses shown in the README have the shape the service really returns.
        shown = [json.loads(b) for b in blocks("json") if '"anomaly_score"' in b and '"results"' not in b]
        # curl prints no newline, so the server's access log may follow on the same line.
        decoder = json.JSONDecoder()
        real = [decoder.raw_decode(line)[0] for line in out.stdout.splitlines() if line.startswith('{"anomaly_score"')]
        assert shown and real and set(shown[0]) == set(real[0])
        assert set(shown[0]["top_features"][0]) == set(real[0]["top_features"][0])
    finally:
        for d in ("models", "reports", "scored"):
            shutil.rmtree(ROOT / d, ignore_errors=True)
        (ROOT / "features.toml").unlink(missing_ok=True)  # the README's `features suggest --out features.toml`
