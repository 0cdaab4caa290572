"""The hw build on a small exported model: steps, intermediates, reports, exactness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.config import HwBuildConfig
from hw.folding import mvau_folding, thresholding_pe
from hw.runner import run_build
from hw.steps import STEPS
from hw.toolchain import finn_environment
from qphy.contracts import Manifest, QuantSpec
from qphy.host import expected_integers, quantize, stream_inputs


@pytest.fixture(scope="module")
def hw_build(small_export, tmp_path_factory):
    return run_build(
        small_export / "model.qonnx.onnx",
        HwBuildConfig(target_cycles=64),
        tmp_path_factory.mktemp("hw_small"),
    )


def test_every_step_saved_and_timed(hw_build):
    names = list(STEPS)
    for k, name in enumerate(names, start=1):
        assert (hw_build.build_dir / "intermediate" / f"{k:02d}_{name}.onnx").is_file()
    times = json.loads((hw_build.build_dir / "step_times.json").read_text())
    assert list(times) == names and all(t >= 0 for t in times.values())


def test_all_layers_rtl_and_report(hw_build):
    ops = {n.op_type for n in hw_build.model.graph.node}
    assert ops <= {
        "MVAU_rtl",
        "Thresholding_rtl",
        "StreamingFIFO_rtl",
        "StreamingDataWidthConverter_rtl",
    }
    report = json.loads(hw_build.report_path.read_text())
    assert report["analytic_cycles_per_frame"] <= 64
    assert set(report["estimated_resources"]) == {"LUT", "BRAM_18K", "URAM", "DSP"}
    assert report["fifo_depths"] and all(d >= 2 for d in report["fifo_depths"].values())
    manifest = json.loads((hw_build.rtl_dir / "manifest.json").read_text())
    assert manifest["input"]["datatype"] == "INT8" and manifest["output"]["datatype"] == "INT8"
    for node in manifest["nodes"]:
        for f in node["files"]:
            assert (hw_build.rtl_dir / "src" / f).is_file()


def test_dataflow_model_matches_qonnx_golden(hw_build, small_export):
    """FINN's python execution of the dataflow partition equals the QONNX golden integers
    (checks the half-even threshold fix and the host-side quantizer)."""
    from qonnx.core.modelwrapper import ModelWrapper

    host = Manifest.read(hw_build.rtl_dir / "manifest.json").host
    x = stream_inputs(np.load(small_export / "golden_in.npy"), host)
    want = expected_integers(np.load(small_export / "golden_out.npy"), host)
    k = list(STEPS).index("create_dataflow_partition") + 1
    path = hw_build.build_dir / "intermediate" / f"{k:02d}_create_dataflow_partition.onnx"
    with finn_environment(hw_build.build_dir):
        from finn.core.onnx_exec import execute_onnx

        model = ModelWrapper(str(path))
        iname, oname = model.graph.input[0].name, model.graph.output[0].name
        got = np.concatenate(
            [
                execute_onnx(model, {iname: x[i : i + 1].astype(np.float32)})[oname]
                for i in range(len(x))
            ]
        )
    assert np.array_equal(got.astype(np.int64), want)


def test_host_quantizer_matches_qonnx_quant():
    from qonnx.custom_op.general.quant import quant

    rng = np.random.default_rng(3)
    scale = np.float32(0.0625)
    y = np.concatenate(
        [
            rng.standard_normal(5000).astype(np.float32) * 4,
            (np.arange(-300, 300) * scale / 2).astype(np.float32),  # exact ties
            np.array([1e6, -1e6, 7.96875, -8.0], dtype=np.float32),  # saturation
        ]
    )
    for signed, narrow in ((1, 0), (1, 1), (0, 0)):
        ref = quant(y, scale, np.float32(0), np.float32(8), signed, narrow, "ROUND") / scale
        got = quantize(
            y,
            QuantSpec(scale=float(scale), bits=8, signed=signed, narrow=narrow),
        )
        assert np.array_equal(got, ref.astype(np.int64))


@pytest.mark.parametrize(("mw", "mh", "target"), [(30, 200, 200), (200, 200, 40), (200, 20, 7)])
def test_folding_meets_target(mw, mh, target):
    pe, simd = mvau_folding(mw, mh, 1, target)
    assert mh % pe == 0 and mw % simd == 0
    assert (mw // simd) * (mh // pe) <= max(target, 1)
    assert thresholding_pe(200, 1, target, pe) in (pe, *range(1, 201))


def test_folding_fully_parallel_when_unreachable():
    assert mvau_folding(30, 20, 1, 0) == (20, 30)


def test_folding_uses_fewest_dsps():
    # DSP48E2: four PEs share a DSP column, so PE=4 costs what PE=1 costs.
    assert mvau_folding(200, 200, 1, 200, "DSP48E2") == (4, 50)
    pe, simd = mvau_folding(200, 200, 1, 200, "DSP58")
    assert (200 // simd) * (200 // pe) <= 200


def test_latency_preference_shortens_dsp_chains():
    # Same cycles target: the latency preference picks the shortest SIMD (DSP chain).
    pe_r, simd_r = mvau_folding(200, 200, 1, 32, "DSP48E2", prefer_latency=False)
    pe_l, simd_l = mvau_folding(200, 200, 1, 32, "DSP48E2", prefer_latency=True)
    assert simd_l < simd_r and (200 // simd_l) * (200 // pe_l) <= 32
