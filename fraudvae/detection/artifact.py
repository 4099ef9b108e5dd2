"""Model directories: safetensors for tensors, JSON for everything else, a SHA-256 manifest.

Nothing is ever unpickled. ``write_artifact`` builds the directory next to its target
and renames it into place, so a crash never leaves a half-written model behind;
``read_artifact`` checks every hash before it parses a byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fraudvae.exceptions import ArtifactError, IncompatibleArtifactError, IntegrityError

__all__ = ["FORMAT_VERSION", "MANIFEST", "file_sha256", "read_artifact", "write_artifact"]

#: Bumped when a change makes older readers misread new artifacts.
FORMAT_VERSION = 1
#: Oldest format this version still reads.
MIN_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TENSORS = "weights.safetensors"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (model files and training data alike)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_artifact(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], documents: dict[str, Any]) -> Path:
    """Write ``tensors`` and one JSON file per entry of ``documents`` to ``path``.

    An existing directory at ``path`` is replaced only once the new one is complete.
    """
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / TENSORS))
        for name, doc in documents.items():
            (tmp / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n")
        files = sorted(p.name for p in tmp.iterdir())
        manifest = {
            "format_version": FORMAT_VERSION,
            "files": {
                name: {"sha256": file_sha256(tmp / name), "bytes": (tmp / name).stat().st_size} for name in files
            },
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_artifact(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Verify a model directory against its manifest and return its tensors and documents.

    Raises
    ------
    ArtifactError
        The directory or its manifest is missing or unreadable.
    IntegrityError
        A listed file is missing, truncated or modified.
    IncompatibleArtifactError
        The directory was written in a format this version cannot read.
    """
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(
            f"Model directory {str(root)!r} does not exist; expected a directory written by VAEDetector.save."
        )
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        version = int(manifest["format_version"])
        files = dict(manifest["files"])
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{str(root)!r} has no {MANIFEST}; expected a directory written by VAEDetector.save."
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{str(root / MANIFEST)!r} is not a valid manifest ({exc}); re-save the model.") from exc
    if not MIN_FORMAT_VERSION <= version <= FORMAT_VERSION:
        raise IncompatibleArtifactError(
            f"{str(root)!r} uses artifact format {version}; this fraudvae reads formats "
            f"{MIN_FORMAT_VERSION} to {FORMAT_VERSION}. "
            + (
                "Upgrade fraudvae to load it."
                if version > FORMAT_VERSION
                else "Re-train or re-save it with a newer fraudvae."
            )
        )
    for name, meta in files.items():
        f = root / name
        if not f.is_file():
            raise IntegrityError(f"{str(root)!r} is missing {name!r}, listed in its manifest; the model is incomplete.")
        size = f.stat().st_size
        if size != meta["bytes"]:
            raise IntegrityError(
                f"{str(f)!r} has {size} bytes, expected {meta['bytes']}: the file is truncated or modified. Re-save the model."
            )
        if file_sha256(f) != meta["sha256"]:
            raise IntegrityError(
                f"{str(f)!r} does not match its SHA-256 in {MANIFEST}: the file was modified. Re-save the model."
            )
    if TENSORS not in files:
        raise IntegrityError(f"{str(root)!r} lists no {TENSORS}; the model is incomplete.")
    try:
        tensors = load_file(str(root / TENSORS))
    except SafetensorError as exc:
        raise IntegrityError(f"{str(root / TENSORS)!r} is not a valid safetensors file ({exc}).") from exc
    docs = {name[: -len(".json")]: json.loads((root / name).read_text()) for name in files if name.endswith(".json")}
    return tensors, docs


def model_version(path: str | os.PathLike[str]) -> str:
    """A model directory's version: the first 12 hex digits of its manifest's SHA-256 (what the service reports)."""
    return hashlib.sha256((Path(path) / MANIFEST).read_bytes()).hexdigest()[:12]
