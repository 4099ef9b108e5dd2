"""The shape of the code, checked: module sizes, no import cycles, a service that cannot collide,
and a core install without the heavy extras."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraudvae import VAEDetector

ROOT = Path(__file__).resolve().parents[1]
#: Import name -> source folder (the service folder installs as fraudvae_service).
PACKAGES = {"fraudvae": ROOT / "fraudvae", "fraudvae_service": ROOT / "service"}
MAX_MODULE_LINES = 450
MAX_FACADE_LINES = 350
#: The library's folders by layer, lowest first. A module imports only from its own folder and
#: from lower layers; folders on one layer (``model`` and ``features``) are independent. The
#: root modules: ``exceptions`` and ``_version`` sit below everything, the package's
#: ``__init__`` (the public API) and ``cli`` (argv) above everything. ``state`` and
#: ``monitor`` are the rooms kept for the online state store and monitoring.
LAYERS: dict[str, int] = {
    "fraudvae.exceptions": 0,
    "fraudvae._version": 0,
    "fraudvae.datasets": 0,
    "fraudvae.data": 1,
    "fraudvae.model": 2,
    "fraudvae.features": 2,
    "fraudvae.detection": 3,
    "fraudvae.report": 4,
    "fraudvae.state": 4,
    "fraudvae.monitor": 5,
    "fraudvae.jobs": 6,
    "fraudvae.cli": 7,
    "fraudvae": 8,
}


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ours that ``name`` imports anywhere in its file (lazy imports count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _room(module: str) -> str:
    """The layer entry a module belongs to: its folder (``fraudvae.model``) or a root module."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_every_library_module_has_a_layer() -> None:
    rooms = {_room(name) for name in _modules() if name == "fraudvae" or name.startswith("fraudvae.")}
    assert rooms - set(LAYERS) == set(), "a new folder or root module needs its place in LAYERS"


def test_imports_run_down_the_layers() -> None:
    """No module imports from a higher layer's folder, nor from a sibling folder on its own layer."""
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if not name.startswith("fraudvae."):
            continue
        here = _room(name)
        for target in _imports(name, path, set(modules)):
            there = _room(target) if target != "fraudvae" else "fraudvae"
            if target.startswith("fraudvae_service") or there == here:
                continue
            if LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{name} ({here}, layer {LAYERS[here]}) imports {target} ({there}, layer {LAYERS[there]})")
    assert wrong == []


@pytest.mark.parametrize(
    ("module", "expected"),
    [("fraudvae.model.network", "fraudvae.model"), ("fraudvae.cli", "fraudvae.cli"), ("fraudvae", "fraudvae")],
)
def test_a_module_belongs_to_its_folder(module: str, expected: str) -> None:
    assert _room(module) == expected


def test_no_module_is_over_450_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {n: s for n, s in sizes.items() if n.startswith("fraudvae.") and s > MAX_MODULE_LINES} == {}


def test_the_detector_facade_is_under_350_lines() -> None:
    assert len(inspect.getsource(VAEDetector).splitlines()) < MAX_FACADE_LINES


def test_there_are_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how packages work, not a cycle;
    # a submodule importing its package's __init__ back is one.
    for name in graph:
        graph[name] -= {m for m in graph[name] if m.startswith(name + ".") and modules[name].name == "__init__.py"}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_library_does_not_import_the_service() -> None:
    """The service depends on the library, never the reverse (the CLI starts it by name, on demand)."""
    modules = _modules()
    users = {
        name
        for name, path in modules.items()
        if name.startswith("fraudvae.")
        and any(m.startswith("fraudvae_service") for m in _imports(name, path, set(modules)))
    }
    assert users == set()


def test_a_bare_service_package_is_not_importable(tmp_path: Path) -> None:
    """Outside the repository (no ``service/`` folder in the current directory) only ``fraudvae_service`` exists."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import importlib.util as u; print(u.find_spec('service') is None, u.find_spec('fraudvae_service') is not None)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "True"], out.stderr


@pytest.mark.slow
def test_the_core_install_fits_without_the_service_report_or_spark_extras(tmp_path: Path) -> None:
    """``pip install fraudvae`` (no extras) in a fresh venv: it imports and fits; ``serve`` and
    ``evaluate`` say which extra to install; ``import service`` fails."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The compiled scientific stack (torch alone is 754 MB unpacked; with numpy, scipy, pandas,
    # scikit-learn and pyarrow, unpacking took 46 s of this test's 60) is lent from this
    # environment through a .pth path: pip sees any distribution on sys.path, so it still checks
    # their versions against the project's requirements, and resolves and installs everything
    # else the core asks for (and those packages' own dependencies) for real. The extras'
    # packages are not lent, so a leak into the core install still shows.
    from importlib.metadata import distribution

    lent = tmp_path / "lent"
    lent.mkdir()
    for name in ("torch", "numpy", "scipy", "pandas", "scikit-learn", "pyarrow"):
        files = distribution(name).files or []
        for top in {f.parts[0] for f in files if f.parts[0] != ".."}:
            (lent / top).symlink_to(Path(str(distribution(name).locate_file(top))).resolve())
    (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "lent.pth"
    ).write_text(f"{lent}\n")
    python, fraudvae = venv / "bin" / "python", venv / "bin" / "fraudvae"
    constraints = ROOT / "requirements" / "constraints.txt"
    install = [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), str(ROOT)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    script = """
import importlib.util as u
# (jinja2 is no test: torch itself depends on it)
absent = ["fastapi", "uvicorn", "pyspark", "matplotlib", "prometheus_client", "pydantic_settings", "service"]
leaked = [m for m in absent if u.find_spec(m) is not None]
assert leaked == [], f"extras leaked into the core install: {leaked}"
import numpy as np
from fraudvae import VAEDetector
X = np.random.default_rng(0).normal(size=(300, 4))
det = VAEDetector(max_epochs=2, random_state=0).fit(X)
print(det.flag(X).shape)
"""
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "(300,)", out.stdout + out.stderr
    served = subprocess.run([str(fraudvae), "serve", "--model", str(tmp_path)], capture_output=True, text=True)
    assert served.returncode == 2 and "pip install 'fraudvae[service]'" in served.stderr, served.stderr
