"""Rule 1's halves (benchmarks/halves.py): fixed by a written rule, sizes mixed, fraud CSVs split."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import halves, protocol


def test_halves_are_the_rule_applied_to_the_row_counts() -> None:
    assert halves.halves(halves.ROWS) == halves.HALVES
    assert sorted(halves.HALVES["A"] + halves.HALVES["B"]) == sorted(halves.ROWS)


def test_each_half_holds_fraud_csvs_small_and_large_files() -> None:
    for names in halves.HALVES.values():
        assert any(n in protocol.CSV_SETS for n in names)
        rows = [halves.ROWS[n] for n in names]
        assert min(rows) < 1000 and max(rows) > 40_000
    sizes = [np.median([halves.ROWS[n] for n in names]) for names in halves.HALVES.values()]
    assert max(sizes) / min(sizes) < 2


def test_row_counts_are_those_of_the_shared_files() -> None:
    assert sorted(protocol.dataset_names()) == sorted(halves.ROWS)
    for name in halves.ROWS:
        assert len(protocol.load(name)[1]) == halves.ROWS[name], name


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("default", ({}, {}, True)),
        ("noratio", ({}, {}, False)),
        ("widths128-64+decay2", ({"hidden_dims": (128, 64)}, {"decay": 2.0}, True)),
        ("steps8000+patience20", ({"patience": 20}, {"steps": 8000.0, "patience": 20.0}, True)),
    ],
)
def test_configurations_parse(config: str, expected: tuple) -> None:
    assert halves.parse(config) == expected


@pytest.mark.parametrize("config", ["widths128", "ratio", "decay", "gmm8", "steps100+steps200"])
def test_unknown_configuration_parts_are_refused(config: str) -> None:
    with pytest.raises(ValueError, match=r"unknown|gmmK"):
        halves.parse(config)
