"""`qphy experiment green-detnet` on its small grid: every Table II row, the depth table, the
outputs, the cache, and the --set overrides."""

from __future__ import annotations

import json

import pytest

from experiments.registry import run_experiment
from qphy.cli import main
from qphy.errors import ConfigError
from tests.tools import run_small_grid

ROWS = [
    "detnet",
    "pruned-detnet",
    "r-detnet",
    "r-detnet-gl",
    "r-detnet-sgl",
    "r-i-detnet",
    "r-i-detnet-sgl",
]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("green")
    run_small_grid("green-detnet", out)
    return out


def test_small_grid_writes_table_curves_and_depths(small):
    summary = json.loads((small / "green-detnet.json").read_text())
    assert [r["key"] for r in summary["rows"]] == ROWS
    base = summary["rows"][0]
    assert base["memory_reduction"] == 0.0 and base["flops_reduction"] == 0.0
    for row in summary["rows"]:
        assert len(row["ber"]) == len(summary["snr_db"]) == 4
        assert row["ber_at_12db"] == row["ber"][summary["snr_db"].index(12.0)]
        acc = row["account"]
        # The memory column is the non-zero weights at 32 bit.
        assert acc["memory_mb"] == pytest.approx(acc["nonzero_weights"] * 4 / 1e6)
    for row in summary["rows"][1:]:
        # Every pruned row is smaller than DetNet (pruning at alpha > 0 removes weights).
        assert row["account"]["nonzero_weights"] < base["account"]["nonzero_weights"]
        assert row["memory_reduction"] > 0.0 and row["flops_reduction"] > 0.0
    depths = summary["depth"]["depths"]
    assert [d["layers"] for d in depths] == [2, 3]
    assert summary["depth"]["stopping_rule_layers"] in (2, 3)
    md = (small / "green-detnet.md").read_text()
    assert "| r-i-detnet-sgl |" in md and "## Incremental depth" in md
    assert (small / "green-detnet.png").stat().st_size > 1000


def test_rerun_reuses_every_point(small):
    summary = run_experiment("green-detnet", small, "small")
    assert summary["computed_this_run"] == []


def test_set_overrides_are_checked(tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown setting"):
        run_experiment("green-detnet", tmp_path, "small", {"layers": 3})
    with pytest.raises(ConfigError, match="expected int"):
        run_experiment("green-detnet", tmp_path, "small", {"n_layers": "three"})
    rc = main(["experiment", "green-detnet", "--out", str(tmp_path), "--set", "n_layers"])
    assert rc == 2
    assert "--set wants KEY=VALUE" in capsys.readouterr().err
