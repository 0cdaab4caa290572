"""RTL verdict on a small quantized CSI encoder (conv net): the detector's flow, unforked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qphy.contracts import REPORT_KEYS
from qphy.flow import FLOW_EXTRAS
from tests.sim.conftest import CI_VECTORS, CONV_TARGET_CYCLES

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


def test_conv_encoder_bit_exact_under_backpressure(conv_rtl):
    out, report = conv_rtl
    on_disk = json.loads((out / "report.json").read_text())
    assert set(on_disk) == {*REPORT_KEYS, *FLOW_EXTRAS}  # + FINN estimate vs the part
    assert on_disk["bit_exact"] is True and on_disk["mismatches"] == 0
    assert on_disk["vectors_checked"] >= CI_VECTORS
    assert on_disk["variant"] == "convsqucsinet_w4a4"


def test_conv_encoder_layers_and_host_layout(conv_rtl):
    out, _ = conv_rtl
    manifest = json.loads((out / "hw" / "rtl" / "manifest.json").read_text())
    ops = {n["op_type"] for n in manifest["nodes"]}
    assert {"FMPadding_rtl", "ConvolutionInputGenerator_rtl", "MVAU_rtl"} <= ops
    host = manifest["host"]
    # NCHW -> NHWC on the way in, NHWC -> NCHW + Flatten on the way out: host permutations.
    assert host["input_shape"] == [2, 32, 32]
    assert sorted(host["input_perm"]) == list(range(2048))
    assert host["input_perm"][:4] == [0, 1024, 1, 1025]  # pixel 0 ch 0, ch 1, pixel 1 ...
    assert sorted(host["output_perm"]) == list(range(64))
    report = json.loads((out / "hw" / "hw_report.json").read_text())
    assert any(f.get("parallel_window") == 1 for f in report["folding"].values())
    x = np.load(out / "sim" / "vectors_in.npy")
    assert x.shape == (CI_VECTORS, 2048) and x.min() == -128 and x.max() == 127


def test_conv_encoder_latency_and_throughput(conv_rtl):
    out, report = conv_rtl
    details = json.loads((out / "sim" / "run" / "details.json").read_text())
    # Steady state: the slowest layer (an FMPadding/SWG at one pixel per cycle), within 10 %.
    assert report["cycles_per_frame"] == pytest.approx(
        details["analytic_cycles_per_frame"], rel=0.10
    )
    assert details["analytic_cycles_per_frame"] <= CONV_TARGET_CYCLES
    # Pipelined conv layers overlap: the latency is above one frame time but far below the
    # sum of the layers' frame times (the analytic upper bound).
    assert report["cycles_per_frame"] < report["latency_cycles"]
    assert report["latency_cycles"] < details["analytic_latency_cycles"]
    assert report["latency_us"] == pytest.approx(report["latency_cycles"] / report["clock_mhz"])
    assert not details["deadlock"] and details["extra_beats"] == 0
