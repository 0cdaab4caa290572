"""The Verilator build limit: automatic (scaled with the design) or given; its one-line error."""

from __future__ import annotations

import pytest

from qphy.contracts import Manifest
from qphy.errors import ConfigError
from sim import build_limit
from sim.config import SimConfig
from tests.bitstreams.conftest import make_hw_dir


def test_limit_scales_with_the_design_unless_given(tmp_path):
    hw = make_hw_dir(tmp_path)
    manifest = Manifest.read(hw / "rtl" / Manifest.FILE)
    assert build_limit.stream_bits(manifest) == 240 + 160
    assert build_limit.build_timeout_s(0.0, manifest) == 900.0  # small: the floor
    wide = manifest.nodes[0].__class__(**{**manifest.nodes[0].__dict__, "in_width_bits": 84_616})
    big = Manifest(**{**manifest.__dict__, "nodes": [wide]})
    assert build_limit.build_timeout_s(0.0, big) == pytest.approx(0.05 * (84_616 + 160))
    assert build_limit.build_timeout_s(120.0, big) == 120.0
    with pytest.raises(ConfigError, match="build_timeout_s must be >= 0"):
        build_limit.build_timeout_s(-1.0, manifest)
    with pytest.raises(ConfigError, match="build_timeout_s must be >= 0"):
        SimConfig(build_timeout_s=-5.0)


def test_a_build_past_its_limit_is_one_named_line(tmp_path, monkeypatch):
    import sim.harness_build
    from sim.verdict import BuildTimeout, build_rtl_sim

    hw = make_hw_dir(tmp_path)

    def too_slow(*args, timeout_s, **kwargs):
        assert timeout_s == 900.0
        raise sim.harness_build.HarnessTimeout("harness build: 'make' exceeded the build's limit")

    monkeypatch.setattr(sim.harness_build, "build_harness", too_slow)
    with pytest.raises(BuildTimeout, match=r"exceeded its 900 s wall-clock limit \(automatic"):
        build_rtl_sim(hw, tmp_path / "sim", SimConfig(n_vectors=1))
    with pytest.raises(BuildTimeout, match="--build-timeout-s"):
        build_rtl_sim(hw, tmp_path / "sim", SimConfig(n_vectors=1))
