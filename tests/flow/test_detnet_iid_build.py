"""`qphy build detector --arch detnet --channel iid`: DetNet on a varying channel (the host
streams ``[H^T y | vec(H^T H)]`` per vector; ``H^T H x`` is an MVAU with dynamic weights) to a
bit-exact RTL verdict under random backpressure, through the CLI, from a tiny model trained
from scratch."""

from __future__ import annotations

import json

import pytest
from qonnx.core.modelwrapper import ModelWrapper

from qphy.cli import main
from qphy.contracts import REPORT_KEYS

pytestmark = [pytest.mark.rtl]


def test_detnet_iid_l2_builds_bit_exact(verilator, tmp_path, capsys):
    out = tmp_path / "detnet_iid_l2"
    rc = main(
        [
            "build", "detector", "--arch", "detnet", "--channel", "iid", "--layers", "2",
            "--bits", "w4a4", "--float-steps", "100", "--qat-steps", "40",
            "--checkpoint-dir", str(tmp_path / "ck"), "--vectors", "40", "--out", str(out),
            # 100 cycles/frame: the dynamic MVAU (20 x 20 = 400 MACs) must fold to PE x SIMD
            # >= 4, so its weight stream is read several elements per beat
            "--target-cycles", "100",
        ]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert set(REPORT_KEYS) <= set(report)
    assert report["variant"] == "detnet_l2_w4a4_iid"
    assert report["bit_exact"] is True and report["mismatches"] == 0
    assert report["vectors_checked"] == 40
    # the product of two streams is an MVAU reading its weights from a stream
    # the graph as exported to RTL (folded; the dataflow partition is the unfolded one)
    hw = ModelWrapper(str(next((out / "hw" / "intermediate").glob("*_export_rtl.onnx"))))
    dyn = [
        n
        for n in hw.graph.node
        if n.op_type.startswith("MVAU")
        and any(a.name == "mem_mode" and a.s == b"dynamic" for a in n.attribute)
    ]
    assert len(dyn) == 1  # layer 2's H^T H x_1 (layer 1 has x_0 = 0)
    attrs = {a.name: a.i for a in dyn[0].attribute if a.name in ("PE", "SIMD")}
    assert attrs["PE"] * attrs["SIMD"] >= 4, attrs
