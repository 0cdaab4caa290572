"""Early, complete error reports: unsupported layers, malformed files, bad configs."""

from __future__ import annotations

import pytest

from hw.config import FoldingPreference, HwBuildConfig, Preset, load_hw_config
from hw.runner import run_build
from qphy.errors import ConfigError, MalformedModelError, UnsupportedLayerError
from qphy.flow import build_onnx
from qphy.qonnx_io import load_model
from sim.config import load_sim_config
from tests.hw.onnx_graphs import float_weight_graph, unsupported_graph


def test_unsupported_ops_all_listed(tmp_path):
    path = unsupported_graph(tmp_path / "bad.onnx")
    with pytest.raises(UnsupportedLayerError, match=r"2 unsupported node\(s\) after export") as e:
        run_build(path, HwBuildConfig(), tmp_path / "build")
    listed = {(n.name, n.op_type) for n in e.value.nodes}
    # The trailing Softmax is a host tail op (hw.legalize.SplitHostPost), not an offender.
    assert listed == {("act1", "Sigmoid"), ("act2", "Tanh")}
    assert all(n.hint for n in e.value.nodes)
    # Nothing past the first step ran.
    assert not (tmp_path / "build" / "rtl").exists()


def test_user_onnx_unsupported_before_any_build(tmp_path):
    path = unsupported_graph(tmp_path / "bad.onnx")
    with pytest.raises(UnsupportedLayerError, match=r"act1 \(Sigmoid\).*act2 \(Tanh\)"):
        build_onnx(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_float_matmul_caught_after_hw_conversion(tmp_path):
    path = float_weight_graph(tmp_path / "float_w.onnx")
    with pytest.raises(UnsupportedLayerError, match=r"after HW conversion.*fc_float|MatMul"):
        run_build(path, HwBuildConfig(preset=Preset.CHECK), tmp_path / "build")


@pytest.mark.parametrize("content", [b"", b"this is not an onnx file \x00\x01\x02", b"\x08" * 64])
def test_malformed_model(tmp_path, content):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(content)
    with pytest.raises(MalformedModelError, match="garbage.onnx"):
        load_model(path)
    with pytest.raises(MalformedModelError):
        build_onnx(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_model_file(tmp_path):
    with pytest.raises(MalformedModelError, match="no such model file"):
        load_model(tmp_path / "nope.onnx")


def test_config_loaders_reject_unknown_keys():
    with pytest.raises(ConfigError, match="unknown hw config key"):
        load_hw_config({"fpga_part": "xczu7ev-ffvc1156-2-e", "clock_mhs": 200})
    with pytest.raises(ConfigError, match="unknown sim config key"):
        load_sim_config({"budget": 3})
    with pytest.raises(ConfigError, match="clock_mhz"):
        load_hw_config({"clock_mhz": -1})
    cfg = load_hw_config(
        {
            "fpga_part": "xczu7ev-ffvc1156-2-e",
            "target_cycles": "40",
            "folding_preference": "latency",
        }
    )
    assert cfg.target_cycles == 40 and cfg.fpga_part == "xczu7ev-ffvc1156-2-e"
    assert cfg.folding_preference is FoldingPreference.LATENCY
    with pytest.raises(ConfigError, match="folding_preference"):
        load_hw_config({"folding_preference": "fastest"})
