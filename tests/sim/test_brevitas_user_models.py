"""`qphy build onnx` on Brevitas models as users write them, to a bit-exact RTL verdict.

Default quantizers (per-tensor float scales, not powers of two), float biases and a last layer
without an output quantizer: the accelerator's integer accumulator is verified bit-exactly
against the reference's, the float scale and bias run on the host and are compared with
qonnx's golden floats (report extras ``verified`` and ``float_tail_max_abs_diff``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.config import HwBuildConfig
from qphy.flow import build_onnx
from sim.config import SimConfig
from tests.hw.brevitas_user_models import export_user_model

#: name -> folding target (cycles per frame of the slowest layer).
MODELS = {"mlp": 32, "cnn2d": 64, "cnn1d": 64}


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_default_quantizer_model_bit_exact(verilator, tmp_path, name):
    path = export_user_model(name, tmp_path / f"{name}.onnx", seed=0)
    out = tmp_path / "out"
    report = build_onnx(
        path,
        out,
        HwBuildConfig(target_cycles=MODELS[name]),
        SimConfig(n_vectors=200, seed=3, source_pause_prob=0.2, sink_pause_prob=0.2),
    )
    assert report.passed and report["bit_exact"] and report["vectors_checked"] == 200
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["variant"] == name
    assert "integer accumulator" in on_disk["verified"]["integers"]
    assert on_disk["verified"]["float_tail"].startswith("host applies")
    assert on_disk["float_tail_max_abs_diff"] <= 1e-4 * on_disk["float_tail_max_abs_golden"]
    # The expected integers are accumulators, far wider than any activation.
    expected = np.load(out / "sim" / "vectors_expected.npy")
    assert np.abs(expected).max() > 127
