"""The same flow on a user's QONNX file (golden vectors generated from it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.config import HwBuildConfig
from qphy.contracts import REPORT_KEYS
from qphy.flow import FLOW_EXTRAS, build_onnx
from sim.config import SimConfig
from tests.hw.fixture_export import make_export


@pytest.mark.rtl
@pytest.mark.slow
def test_user_qonnx_file_bit_exact(verilator, tmp_path):
    export = make_export(tmp_path / "user", bits="w4a4", n_golden=8, hidden=32, n_hidden_layers=1)
    user_file = tmp_path / "my_detector.onnx"
    (export / "model.qonnx.onnx").rename(user_file)
    out = tmp_path / "out"
    report = build_onnx(
        user_file, out, HwBuildConfig(target_cycles=32), SimConfig(n_vectors=300, seed=5)
    )
    assert report["bit_exact"] and report["vectors_checked"] == 300
    on_disk = json.loads((out / "report.json").read_text())
    assert set(on_disk) == {*REPORT_KEYS, *FLOW_EXTRAS} and on_disk["variant"] == "my_detector"
    assert on_disk["estimated_fit"]["fits"] is True
    # Half of the generated inputs saturate the input quantizer.
    x = np.load(out / "sim" / "vectors_in.npy")
    saturated = np.any((x == 127) | (x == -128), axis=1)
    assert saturated[1::2].mean() > 0.9
