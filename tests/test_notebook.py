"""The teaching notebook runs top to bottom without errors, and is committed as the script builds it."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "fraud_detection_with_vae.ipynb"


def test_committed_notebook_is_what_the_script_builds() -> None:
    sys.path.insert(0, str(NOTEBOOK.parent))
    from build_notebook import build

    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in build().cells]
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code"), "commit it without outputs"


def test_notebook_executes() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "rows sum to the score: True" in text and "collapsed VAE" in text
