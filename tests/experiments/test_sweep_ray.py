"""Experiment sweeps on Ray (`--ray local`: a throw-away cluster on this machine): the same
results as the local run, written to the same resumable cache."""

from __future__ import annotations

import json

import pytest

from experiments.registry import run_experiment
from qphy.errors import ConfigError

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def test_ray_sweep_equals_local_and_resumes(tmp_path):
    local = run_experiment("green-detnet", tmp_path / "local", "small")
    on_ray = run_experiment("green-detnet", tmp_path / "ray", "small", ray_address="local")
    assert on_ray["computed_this_run"] == local["computed_this_run"]
    for a, b in zip(local["rows"], on_ray["rows"], strict=True):
        assert a["key"] == b["key"]
        # Seeded training on one thread: the same weights, hence the same error counts.
        assert a["errors"] == b["errors"], a["key"]
        assert a["account"] == b["account"], a["key"]
    assert local["depth"]["depths"] == on_ray["depth"]["depths"]
    # Every point was cached by the driver as it arrived: a rerun computes nothing.
    point = json.loads((tmp_path / "ray" / "points" / "r-detnet.json").read_text())
    assert point["result"]["errors"] == local["rows"][2]["errors"]
    again = run_experiment("green-detnet", tmp_path / "ray", "small", ray_address="local")
    assert again["computed_this_run"] == []


def test_unreachable_cluster_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot connect to the Ray cluster"):
        run_experiment("green-detnet", tmp_path, "small", ray_address="ray://127.0.0.1:1")
