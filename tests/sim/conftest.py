"""Fixtures of the RTL tests: one Verilator build of the small model, shared by every test."""

from __future__ import annotations

import pytest

from hw.config import HwBuildConfig
from qphy.flow import build_and_verify
from sim.config import SimConfig
from tests.hw.fixture_export import make_export
from tests.tools import tool_or_skip

#: CI verdict size (the main job uses >= 10,000).
CI_VECTORS = 1000


@pytest.fixture(scope="session")
def verilator():
    """Verilator's path: a skip locally, a failure in CI (RTL simulation is a CI feature)."""
    return tool_or_skip("verilator", "run `make setup`")


@pytest.fixture(scope="session")
def small_export_sim(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("export_sim"), bits="w4a4", n_golden=512)


@pytest.fixture(scope="session")
def small_rtl(verilator, small_export_sim, tmp_path_factory):
    """(out_dir, report) of build_and_verify on the small model: 1000 vectors, backpressure."""
    out = tmp_path_factory.mktemp("rtl_small") / "fullycon_w4a4"
    report = build_and_verify(
        small_export_sim,
        out,
        HwBuildConfig(target_cycles=64),
        SimConfig(n_vectors=CI_VECTORS, seed=7, source_pause_prob=0.3, sink_pause_prob=0.3),
    )
    return out, report


#: The CI conv encoder: ConvSquCsiNet (3x3 convs, strided fire modules with 1x1 squeezes, 1x1
#: codeword conv), width 4, CR 32 (64-element codeword), w4a4, random init.
CONV_ARCH, CONV_CR, CONV_WIDTH = "convsqucsinet", 32, 4
#: Cycles per layer: lets the 3x3 convs on 2 channels use the SWG's parallel-window mode.
CONV_TARGET_CYCLES = 1200


@pytest.fixture(scope="session")
def conv_export(tmp_path_factory):
    from tests.hw.fixture_export import make_csi_export

    return make_csi_export(
        tmp_path_factory.mktemp("export_conv"),
        arch=CONV_ARCH,
        cr=CONV_CR,
        width=CONV_WIDTH,
        n_golden=CI_VECTORS,
    )


@pytest.fixture(scope="session")
def conv_rtl(verilator, conv_export, tmp_path_factory):
    """(out_dir, report) of build_and_verify on the small conv encoder, backpressure on."""
    out = tmp_path_factory.mktemp("rtl_conv") / f"{CONV_ARCH}_w4a4"
    report = build_and_verify(
        conv_export,
        out,
        HwBuildConfig(target_cycles=CONV_TARGET_CYCLES),
        SimConfig(n_vectors=CI_VECTORS, seed=11, source_pause_prob=0.3, sink_pause_prob=0.3),
    )
    return out, report
