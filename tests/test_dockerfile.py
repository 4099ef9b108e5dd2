"""The Dockerfile, checked statically (no Docker engine runs here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "Dockerfile").read_text()
LINES = [ln.strip() for ln in TEXT.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_multi_stage_on_official_slim_python_311() -> None:
    froms = [ln for ln in LINES if ln.startswith("FROM ")]
    assert len(froms) >= 2
    assert all(re.match(r"FROM python:3\.11-slim( AS \w+)?$", ln) for ln in froms)


def test_cpu_only_torch_pinned_like_the_project() -> None:
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_pin = next(d for d in pinned if d.startswith("torch"))
    assert f"pip install {torch_pin} --index-url https://download.pytorch.org/whl/cpu" in TEXT


def test_files_it_copies_exist() -> None:
    for line in LINES:
        if line.startswith("COPY ") and "--from=" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    first_dep_install = next(i for i, ln in enumerate(LINES) if "pip install -c" in ln)
    code_copy = next(i for i, ln in enumerate(LINES) if ln.startswith("COPY fraudvae "))
    assert first_dep_install < code_copy


def test_runs_as_non_root_with_healthcheck_and_console_script() -> None:
    runtime = TEXT.split("AS runtime", 1)[1]
    users = re.findall(r"^USER (\S+)", runtime, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"HEALTHCHECK .*\n.*CMD .*http://127\.0\.0\.1:8000/health", runtime)
    assert 'ENTRYPOINT ["fraudvae", "serve"]' in runtime
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["fraudvae"] == "fraudvae.cli:main"
    assert 'VOLUME ["/model", "/state"]' in runtime and "FRAUDVAE_MODEL_DIR=/model" in runtime


def test_the_image_keeps_a_spec_models_state_in_sqlite_on_a_volume_it_may_write() -> None:
    runtime = TEXT.split("AS runtime", 1)[1]
    assert "FRAUDVAE_STATE_URL=sqlite:////state/state.sqlite" in runtime
    assert "chown 10001 /state" in runtime and runtime.index("chown 10001 /state") < runtime.index("USER 10001")


def test_the_readme_compose_pair_runs_the_server_beside_a_durable_redis() -> None:
    """The README's compose file (text, checked statically as the Dockerfile is): the image
    with FRAUDVAE_STATE_URL on the redis service, which keeps an append-only file."""
    import yaml

    readme = (ROOT / "README.md").read_text()
    [block] = re.findall(r"^```yaml\n(.*?)^```", readme, flags=re.M | re.S)
    doc = yaml.safe_load(block)
    server, store = doc["services"]["fraudvae"], doc["services"]["redis"]
    assert server["build"] == "." and "8000:8000" in server["ports"]
    env = dict(item.split("=", 1) for item in server["environment"])
    assert env["FRAUDVAE_STATE_URL"].startswith("redis://redis:6379/") and env["FRAUDVAE_WORKERS"] == "2"
    assert any(v.endswith(":/model:ro") for v in server["volumes"])
    assert server["depends_on"] == ["redis"]
    assert store["image"].startswith("redis:7") and "--appendonly" in store["command"]
    assert "/data" in store["volumes"][0]


def test_hadolint_finds_nothing() -> None:
    import subprocess
    import sys

    hadolint = Path(sys.executable).with_name("hadolint")
    out = subprocess.run([str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout


def test_the_image_installs_the_service_extra() -> None:
    """``fraudvae serve`` needs fastapi and uvicorn, which only the ``service`` extra brings."""
    assert re.search(r'pip install [^\n]*"/src\[service\]"', TEXT)
    assert "service" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _package_folders() -> set[str]:
    """Every folder of the library and the service that holds an ``__init__.py``, as a package name."""
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fraudvae").rglob("__init__.py")}
    found |= {
        "fraudvae_service" + "".join(f".{x}" for x in p.parent.relative_to(ROOT / "service").parts)
        for p in (ROOT / "service").rglob("__init__.py")
    }
    return found


def test_regression_a_new_layer_folder_missing_from_the_package_list() -> None:
    """pyproject names packages one by one: a folder left out installs without its modules
    (fine in an editable install, broken in the image and in ``pip install fraudvae``)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert listed == _package_folders()


def test_the_dependency_stage_stubs_every_package() -> None:
    """The stage that installs dependencies before the code builds the project from empty
    ``__init__.py`` files; setuptools refuses a listed package whose folder is missing."""
    stubbed = re.search(r"for p in (.*?); do", TEXT, flags=re.S)
    assert stubbed is not None
    folders = {
        f.replace("/", ".").replace("service", "fraudvae_service", 1)
        if f.startswith("service")
        else f.replace("/", ".")
        for f in stubbed.group(1).replace("\\", " ").split()
    }
    assert folders == _package_folders()
