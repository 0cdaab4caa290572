"""The `qphy build` command line: exit codes, one-line errors, reports, no half-written output."""

import json
import subprocess
import sys

import pytest

from tests.hw.fixture_export import make_export
from tests.hw.onnx_graphs import tiny_mlp_graph


def _qphy(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qphy.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_malformed_onnx_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    res = _qphy("build", "onnx", str(bad), "--out", str(tmp_path / "out"))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("qphy: error: MalformedModelError")
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_bad_fpga_part_is_config_error(tmp_path):
    model = tiny_mlp_graph(tmp_path / "x.onnx")
    res = _qphy("build", "onnx", str(model), "--fpga-part", "ep4ce22", "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert "ConfigError: fpga_part 'ep4ce22'" in res.stderr


@pytest.mark.rtl
@pytest.mark.slow
def test_impossible_budget_exits_nonzero_with_report(verilator, tmp_path):
    export = make_export(tmp_path / "exp", bits="w4a4", n_golden=64, hidden=32, n_hidden_layers=1)
    out = tmp_path / "user_w4a4"
    res = _qphy(
        "build",
        "onnx",
        str(export / "model.qonnx.onnx"),
        "--out",
        str(out),
        "--vectors",
        "200",
        "--target-cycles",
        "32",
        "--budget-us",
        "0.01",
    )
    assert res.returncode == 1, res.stderr
    assert "LatencyBudgetError" in res.stderr.strip().splitlines()[-1]
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is True and report["vectors_checked"] == 200
    assert report["within_budget"] is False and report["budget_us"] == 0.01
    assert report["latency_us"] > 0.01
