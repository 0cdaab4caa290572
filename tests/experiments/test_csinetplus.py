"""`qphy experiment csinetplus-pruning|csinetplus-quantization` on their small grids (shipped
CsiNet+ CR 32 indoor float model, a few fine-tuning steps)."""

from __future__ import annotations

import pytest

from experiments.registry import run_experiment
from tests.tools import run_small_grid

pytestmark = pytest.mark.slow


def test_csinetplus_pruning_small(tmp_path):
    out = tmp_path / "p"
    summary = run_small_grid("csinetplus-pruning", out)
    (row,) = summary["rows"]
    assert (row["cr"], row["scenario"], row["t"]) == (32, "indoor", 0.02)
    total, enc = row["weights"]["total"], row["weights"]["encoder"]
    # The masks survive fine-tuning: exactly the pruned fraction of the weights is zero.
    assert total["nonzero"] == pytest.approx(total["weights"] * (1 - row["pruned_fraction"]), abs=1)
    assert 0 < enc["nonzero"] < enc["weights"]
    assert row["nmse_db"] < 0.0
    assert "| indoor | 32 | 0.02 |" in (out / "csinetplus-pruning.md").read_text()
    assert run_experiment("csinetplus-pruning", out, "small")["computed"] == []


def test_csinetplus_quantization_small(tmp_path):
    out = tmp_path / "q"
    (row,) = run_small_grid("csinetplus-quantization", out)["rows"]
    assert row["weight_bits"] == 4 and row["encoder_memory_saved_vs_float32"] == 0.875
    assert row["nmse_db"] < 0.0
    assert (out / "csinetplus-quantization.png").stat().st_size > 1000
