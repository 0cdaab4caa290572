"""A real build's outputs: a rebuild replaces the previous build whole, and the report carries
the per-layer table under the user's node names with accelerator.svg beside it."""

from __future__ import annotations

import json

import pytest

from qphy.cli import main
from qphy.fsutil import MARKER
from tests.hw.onnx_graphs import tiny_mlp_graph

pytestmark = pytest.mark.rtl


def test_rebuild_replaces_whole_and_report_names_user_layers(verilator, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_mlp_graph(tmp_path / "my.onnx")
    argv = ["build", "onnx", "my.onnx", "--out", "b/tiny", "--vectors", "100"]
    assert main(argv) == 0
    (tmp_path / "b" / "tiny" / "leftover.txt").write_text("written into the first build")
    assert main([*argv, "--target-cycles", "4"]) == 0
    out = tmp_path / "b" / "tiny"
    assert not (out / "leftover.txt").exists()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["tiny"]  # no staging, no lock
    assert json.loads((out / MARKER).read_text())["qphy_output"] == "build"
    rep = json.loads((out / "report.json").read_text())
    by_user = {}
    for row in rep["layers"]:
        for name in row["user_nodes"]:
            by_user.setdefault(name, []).append(row["op_type"])
    assert "MVAU_rtl" in by_user["fc"] and "Thresholding_rtl" in by_user["relu"]
    fifos = [r for r in rep["layers"] if r["op_type"] == "StreamingFIFO_rtl"]
    assert fifos and all(r["fifo_depth"] >= 2 for r in fifos)
    mvau = next(r for r in rep["layers"] if r["op_type"] == "MVAU_rtl")
    assert mvau["cycles"] == rep["cycles_per_frame"] == 4
    assert rep["folding_target"]["met"] is True and rep["folding_target"]["target_cycles"] == 4
    assert any("MVAU_rtl LUTs as 0" in n for n in rep["estimate_notes"])
    svg = (out / "accelerator.svg").read_text()
    assert svg.startswith("<svg") and ">fc<" in svg and "MVAU_rtl_0" in svg
