"""BENCHMARKS.md is a front page of current figures; the study logs live in docs/experiments/.

Every benchmark script writes its table between markers in one file: the markers must be
where the page expects them (a missing pair would append the table at the end of the file),
and every link from the page must resolve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "BENCHMARKS.md"
#: "At most about 15 KB": a user reads it in one sitting.
MAX_PAGE_BYTES = 16_000
_WRITES = re.compile(r'replace_section\(\s*ROOT((?:\s*/\s*"[^"]+")+),\s*f?"([\w{}]+)"')


def _writes() -> list[tuple[str, Path, str]]:
    out = []
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        for parts, name in _WRITES.findall(script.read_text()):
            target = ROOT.joinpath(*re.findall(r'"([^"]+)"', parts))
            out.append((script.name, target, name))
    return out


def test_the_front_page_is_short() -> None:
    assert PAGE.stat().st_size <= MAX_PAGE_BYTES


@pytest.mark.parametrize(("script", "target", "name"), _writes(), ids=lambda v: str(v).rsplit("/", 1)[-1])
def test_every_benchmark_writes_into_an_existing_section(script: str, target: Path, name: str) -> None:
    assert target.exists(), f"{script} writes to {target}, which does not exist"
    pattern = re.sub(r"\\\{\w+\\\}", r"\\w+", re.escape(name))
    text = target.read_text()
    starts = re.findall(rf"<!-- ({pattern}):start -->", text)
    assert starts, f"{script} writes section {name!r}; {target.name} has no such markers"
    assert all(f"<!-- {s}:end -->" in text for s in starts)


def test_the_scripts_write_sections() -> None:
    assert len(_writes()) >= 14  # every benchmarks/*.py that writes a table


def test_every_link_of_the_page_and_the_experiments_resolves() -> None:
    for doc in [PAGE, *sorted((ROOT / "docs" / "experiments").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in link:
                continue
            assert (doc.parent / link).exists(), f"{doc.name} links to {link}, which does not exist"


def test_each_experiment_is_one_dated_file() -> None:
    names = [p.name for p in (ROOT / "docs" / "experiments").glob("*.md") if p.name != "README.md"]
    assert names and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}-[a-z0-9-]+\.md", n) for n in names), names
