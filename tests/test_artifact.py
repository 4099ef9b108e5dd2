"""Artifacts: no pickle, hashes checked, clear refusal of modified, truncated or foreign files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from fraudvae import ArtifactError, IncompatibleArtifactError, IntegrityError, VAEDetector


@pytest.fixture()
def model_dir(fitted: VAEDetector, tmp_path: Path) -> Path:
    fitted.save(str(tmp_path / "model"))
    return tmp_path / "model"


def test_artifact_holds_only_safetensors_and_json(model_dir: Path) -> None:
    names = sorted(p.name for p in model_dir.iterdir())
    assert names == [
        "calibration.json",
        "config.json",
        "history.json",
        "manifest.json",
        "preprocessing.json",
        "reference.json",
        "schema.json",
        "versions.json",
        "weights.safetensors",
    ]
    versions = json.loads((model_dir / "versions.json").read_text())
    assert {"fraudvae", "torch", "numpy", "pandas", "scikit-learn", "python"} <= set(versions)


def test_load_never_unpickles(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("load must not unpickle anything")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    VAEDetector.load(str(model_dir))


def test_modified_file_is_refused(model_dir: Path) -> None:
    path = model_dir / "calibration.json"
    doc = json.loads(path.read_text())
    doc["threshold"] = -1.0
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    # Same length, different bytes: only the hash can tell.
    original = path.read_text()
    text = text[: len(original)].ljust(len(original))
    path.write_text(text)
    with pytest.raises(IntegrityError, match=r"calibration.json.*does not match its SHA-256"):
        VAEDetector.load(str(model_dir))


def test_truncated_weights_are_refused(model_dir: Path) -> None:
    path = model_dir / "weights.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError, match="truncated or modified"):
        VAEDetector.load(str(model_dir))


def test_missing_file_is_refused(model_dir: Path) -> None:
    (model_dir / "schema.json").unlink()
    with pytest.raises(IntegrityError, match=r"missing 'schema.json'"):
        VAEDetector.load(str(model_dir))


def test_missing_directory_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        VAEDetector.load(str(tmp_path / "nope"))


def test_directory_without_manifest_is_explained(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(ArtifactError, match=r"has no manifest.json"):
        VAEDetector.load(str(tmp_path / "x"))


def test_newer_format_says_upgrade(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["format_version"] = 99
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleArtifactError, match=r"format 99.*Upgrade fraudvae"):
        VAEDetector.load(str(model_dir))


def test_save_replaces_an_existing_model_atomically(fitted: VAEDetector, model_dir: Path) -> None:
    fitted.save(str(model_dir))
    assert not any(p.name.startswith(".") for p in model_dir.parent.iterdir()), "no temporary directories left"
    VAEDetector.load(str(model_dir))
