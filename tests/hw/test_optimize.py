"""The folding search on a small exported FullyCon (30 -> 2x64 -> 20): fits, optimality on
its own models, modes, and the physics figures."""

from __future__ import annotations

import math

import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.config import HwBuildConfig, Optimize
from hw.optimize import layer_candidates, physics, search
from qphy.errors import ConfigError

ZU3 = "xczu3eg-sbva484-1-e"
ZU7 = "xczu7ev-ffvc1156-2-e"


@pytest.fixture(scope="module")
def specialized(small_export, tmp_path_factory):
    """The small model right after specialize_layers (before any folding decision)."""
    from hw.runner import run_build

    out = tmp_path_factory.mktemp("hw_opt")
    run_build(
        small_export / "model.qonnx.onnx",
        HwBuildConfig(stop_step="specialize_layers"),
        out,
    )
    return next((out / "intermediate").glob("*_specialize_layers.onnx"))


def _mvaus(model):
    return [getCustomOp(n) for n in model.graph.node if n.op_type.startswith("MVAU")]


def test_latency_search_fits_and_beats_every_frontier_point(specialized):
    model, res = search(ModelWrapper(str(specialized)), ZU3, Optimize.LATENCY, 64)
    assert all(res.model_resources[k] <= res.budget[k] for k in res.budget)
    assert res.budget["DSP"] == pytest.approx(360 * 0.85)
    fitting = [p for p in res.frontier if p["fits"]]
    assert res.model_latency_cycles == min(p["model_latency_cycles"] for p in fitting)
    # the folding on the model is the reported one, and legal (divisors)
    for inst in _mvaus(model):
        f = res.folding[inst.onnx_node.name]
        assert (inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")) == (f["PE"], f["SIMD"])
        assert inst.get_nodeattr("MH") % f["PE"] == 0 and inst.get_nodeattr("MW") % f["SIMD"] == 0
    # the frontier trades DSPs for latency: more DSPs, never more latency
    lat = [p["model_latency_cycles"] for p in res.frontier]
    dsp = [p["DSP"] for p in res.frontier]
    assert lat == sorted(lat, reverse=True) and lat[-1] < lat[0]
    assert dsp == sorted(set(dsp))
    assert res.macs_per_frame == 30 * 64 + 64 * 64 + 64 * 20


def test_a_tighter_part_gives_a_slower_folding(specialized):
    _, big = search(ModelWrapper(str(specialized)), ZU7, Optimize.LATENCY, 64)
    _, small = search(ModelWrapper(str(specialized)), ZU3, Optimize.LATENCY, 64, margin=0.15)
    assert small.model_resources["DSP"] <= 0.15 * 360
    assert small.model_latency_cycles > big.model_latency_cycles


def test_resources_mode_meets_the_target_with_fewest_dsps(specialized):
    model, res = search(ModelWrapper(str(specialized)), ZU3, Optimize.RESOURCES, 64)
    assert res.model_cycles_per_frame <= 64
    # no single layer could use fewer DSPs and still meet the target
    for inst in _mvaus(model):
        mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
        least = min(
            math.ceil(pe / 4) * simd
            for pe in range(1, mh + 1)
            if mh % pe == 0
            for simd in range(1, mw + 1)
            if mw % simd == 0 and (mw // simd) * (mh // pe) <= 64
        )
        assert math.ceil(inst.get_nodeattr("PE") / 4) * inst.get_nodeattr("SIMD") == least


def test_candidates_are_pareto(specialized):
    """No kept candidate is beaten by another on latency and every modelled resource."""
    model = ModelWrapper(str(specialized))
    node = next(n for n in model.graph.node if n.op_type.startswith("MVAU"))
    cands = layer_candidates(model, node, None, ZU3, lambda c: (c.latency,))
    assert len(cands) > 1
    keys = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")
    for a in cands:
        for b in cands:
            if a is not b:
                assert not (b.latency <= a.latency and all(b.res[k] <= a.res[k] for k in keys)), (
                    a,
                    b,
                )


def test_the_search_budgets_every_resource_by_the_synth_model(specialized):
    """The chosen point fits every resource by the synth model; a margin the fastest folding
    exceeds in flip-flops (not DSPs) makes the search slower, never over the budget."""
    _, free = search(ModelWrapper(str(specialized)), ZU7, Optimize.LATENCY, 64)
    used = free.model_resources
    assert set(used) == {"LUT", "FF", "BRAM_18K", "URAM", "DSP"} and used["FF"] > 0
    # a budget just under the unconstrained pick's FFs (its DSPs stay affordable)
    ff_share = used["FF"] / 460000 * 0.9
    dsp_share = used["DSP"] / 1728
    assert ff_share < 0.85 and dsp_share < ff_share  # FF is what binds below
    _, tight = search(ModelWrapper(str(specialized)), ZU7, Optimize.LATENCY, 64, margin=ff_share)
    assert tight.model_resources["FF"] <= ff_share * 460000
    assert all(tight.model_resources[k] <= tight.budget[k] for k in tight.budget)
    assert tight.model_latency_cycles > free.model_latency_cycles
    assert tight.model_utilisation["FF"] == pytest.approx(
        tight.model_resources["FF"] / 460000, abs=1e-4
    )


def test_a_bad_margin_is_a_config_error(specialized):
    with pytest.raises(ConfigError, match="margin"):
        search(ModelWrapper(str(specialized)), ZU3, Optimize.LATENCY, 64, margin=1.5)
    with pytest.raises(ConfigError, match="optimize_margin"):
        HwBuildConfig(optimize_margin=0.0)


def test_no_fit_is_a_config_error(specialized):
    with pytest.raises(ConfigError, match="no folding fits"):
        search(ModelWrapper(str(specialized)), ZU3, Optimize.LATENCY, 64, margin=1e-6)


def test_physics_of_the_fullycon_on_the_zu7ev():
    macs = 30 * 200 + 3 * 200 * 200 + 200 * 20
    p = physics(macs, ZU7, cycles_per_frame=20)  # 10 M vectors/s at 200 MHz
    assert p["macs_per_cycle_needed"] == 6500
    assert p["dsp_needed"] == 1625 and p["dsp_capacity"] == 1728


def test_cli_flags_reach_the_hw_config():
    from qphy.cli import _hw_sim_configs, build_parser
    from qphy.targets import HwDefaults

    args = build_parser().parse_args(
        ["build", "onnx", "m.onnx", "--out", "o", "--optimize", "throughput", "--synth"]
    )
    hw, _ = _hw_sim_configs(args, HwDefaults())
    assert hw.optimize is Optimize.THROUGHPUT and args.synth is True
    assert hw.optimize_margin == 0.85
    m = build_parser().parse_args(
        [
            "build",
            "onnx",
            "m.onnx",
            "--out",
            "o",
            "--optimize",
            "latency",
            "--optimize-margin",
            "0.7",
        ]
    )
    assert _hw_sim_configs(m, HwDefaults())[0].optimize_margin == 0.7
    plain = build_parser().parse_args(["build", "onnx", "m.onnx", "--out", "o"])
    assert _hw_sim_configs(plain, HwDefaults())[0].optimize is None and plain.synth is False
    with pytest.raises(ConfigError, match="invalid choice"):
        build_parser().parse_args(["build", "onnx", "m.onnx", "--out", "o", "--optimize", "x"])
