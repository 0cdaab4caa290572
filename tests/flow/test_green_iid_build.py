"""`qphy experiment green-detnet-iid`: a pruned 2-layer DetNet on the i.i.d. channel (hidden
units and entries of v physically removed) built through the CLI to a bit-exact RTL verdict,
its FINN layers smaller than the dense model's."""

from __future__ import annotations

import json

import pytest
from qonnx.core.modelwrapper import ModelWrapper

from qphy.cli import main

pytestmark = [pytest.mark.rtl]


def test_pruned_detnet_iid_l2_builds_bit_exact(verilator, tmp_path, capsys):
    out = tmp_path / "green"
    sets = {
        "layers": 2,
        "variants": ["sgl"],
        "build": True,
        "vectors": 20,
        "float_steps": 40,
        "qat_steps": 10,
    }
    args = ["experiment", "green-detnet-iid", "--grid", "small", "--out", str(out)]
    for key, value in sets.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    assert main(args) == 0, capsys.readouterr().err
    row = json.loads((out / "green-detnet-iid.json").read_text())["rows"][0]
    assert row["key"] == "sgl" and row["bit_exact"] is True and row["vectors_checked"] == 20
    # beta = 0.9 of the small grid: most units and entries of v go, and the build has them gone
    assert max(row["hidden_widths"]) < 160 and row["v_dim"] < 40
    report = json.loads((out / "builds" / "sgl" / "report.json").read_text())
    assert report["hidden_widths"] == row["hidden_widths"] and report["mismatches"] == 0
    hw = ModelWrapper(str(next((out / "builds" / "sgl" / "hw").rglob("*dataflow_partition*.onnx"))))
    shapes = {
        (int(_attr(n, "MW")), int(_attr(n, "MH")))
        for n in hw.graph.node
        if n.op_type.startswith("MVAU")
    }
    h1, h2, vd = *row["hidden_widths"], row["v_dim"]
    # layer 1: fc 20 -> h1, fc_v h1 -> v; layer 2: fc 3K + v -> h2, fc_r h2 -> K
    assert {(20, h1), (h1, vd), (60 + vd, h2), (h2, 20)} <= shapes


def _attr(node, name: str):
    from onnx import helper

    return next(helper.get_attribute_value(a) for a in node.attribute if a.name == name)
