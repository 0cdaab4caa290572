"""`qphy experiment green-detnet-iid` on its small grid (no build): the rows' structure (R-I
truncated and v pruned, hidden units kept), the BER bookkeeping and ratio against the dense row,
the cache, and the named errors."""

from __future__ import annotations

import json

import pytest

from experiments.registry import run_experiment
from qphy.errors import ConfigError
from tests.tools import run_small_grid


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("green_iid")
    run_small_grid("green-detnet-iid", out)
    return out


def test_small_grid_rows(small):
    summary = json.loads((small / "green-detnet-iid.json").read_text())
    assert summary["settings"]["freeze_mix"] is True
    rows = {r["key"]: r for r in summary["rows"]}
    assert list(rows) == ["dense", "sgl", "ri"]
    dense, sgl, ri = rows["dense"], rows["sgl"], rows["ri"]
    assert dense["layers"] == 3 and dense["v_dim"] == 40 and dense["hidden_widths"] == [160] * 3
    # R-I: 2 of 3 layers, v pruned (at least 70 % of v's entries, and beta 0.9 of the small
    # grid); SGL keeps 3 layers; both prune units (beta 0.9)
    assert ri["layers"] == 2 and len(ri["hidden_widths"]) == 2 and ri["v_dim"] <= 12
    assert sgl["layers"] == 3 and max(sgl["hidden_widths"]) < 160
    for r in rows.values():
        # 100 vectors of K = 20 symbols at one SNR; the rate is errors / bits
        assert r["bits"] == 2000 and len(r["errors"]) == 1
        assert r["ber_at_12db"] == pytest.approx(r["errors"][0] / r["bits"])
        assert r["ber_ratio"] == pytest.approx(r["ber_at_12db"] / dense["ber_at_12db"])
        assert "LUT" not in r and "target_met" not in r  # nothing built, no dense report
    md = (small / "green-detnet-iid.md").read_text()
    assert "mixes frozen" in md and f"| {ri['errors'][0]}/2000 |" in md


def test_rerun_reuses_every_row_and_a_changed_ri_setting_only_the_ri_row(small):
    assert run_experiment("green-detnet-iid", small, "small")["computed_this_run"] == []
    again = run_experiment("green-detnet-iid", small, "small", {"ri_finetune_steps": 3})
    assert again["computed_this_run"] == ["ri"]


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown variant"):
        run_experiment("green-detnet-iid", tmp_path, "small", {"variants": ["dense", "tiny"]})
    with pytest.raises(ConfigError, match="unknown variant"):
        run_experiment("green-detnet-iid", tmp_path, "small", {"build_only": ["r-i"]})
    with pytest.raises(ConfigError, match="ri_start"):
        run_experiment("green-detnet-iid", tmp_path, "small", {"ri_start": "float"})
    with pytest.raises(ConfigError, match="not a build report"):
        run_experiment(
            "green-detnet-iid",
            tmp_path,
            "small",
            {"variants": ["dense"], "dense_report": str(tmp_path / "missing.json")},
        )


def test_dense_ft_is_the_full_depth_control_at_ri_mix(tmp_path):
    summary = run_experiment(
        "green-detnet-iid", tmp_path, "small", {"variants": ["dense", "dense-ft"], "float_mix": 0.1}
    )
    dense, ft = summary["rows"]
    assert (dense["layers"], dense["mix"]) == (3, 0.1)
    assert (ft["layers"], ft["mix"], ft["v_dim"]) == (3, 0.25, 40)
    assert ft["ber_ratio_dense_ft"] == 1.0 and dense["ber_ratio"] == 1.0
