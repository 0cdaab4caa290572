"""`qphy build csi-encoder` end to end: trained checkpoint -> export -> RTL verdict -> report."""

import json

import pytest

from models.csi import jobs as csi
from qphy.cli import main
from qphy.contracts import REPORT_KEYS


@pytest.mark.rtl
@pytest.mark.slow
def test_build_csi_encoder_report(verilator, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CSI data cache (.cache/csi) goes here
    ck = tmp_path / "ck"
    cfg = csi.CsiConfig(
        arch="convsqucsinet", cr=32, bits="w4a4", width=4, train_samples=40, test_samples=300,
        float_steps=4, qat_steps=2, batch_size=8,
    )  # fmt: skip
    csi.train(cfg, ck)
    out = tmp_path / "out"
    argv = ["build", "csi-encoder", "--arch", "convsqucsinet", "--cr", "32", "--bits", "w4a4"]
    argv += ["--scenario", "indoor", "--checkpoint-dir", str(ck), "--out", str(out)]
    assert main([*argv, "--vectors", "120"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(REPORT_KEYS) <= set(rep)
    assert rep["bit_exact"] is True and rep["vectors_checked"] == 120 and rep["mismatches"] == 0
    assert rep["within_budget"] is True and rep["budget_us"] == 8.9  # the encoder's default
    assert rep["codeword_bits"] == 8 and rep["codeword_size"] == 64
    assert rep["feedback_bits"] == 8 * 64
    assert set(rep["nmse_db"]) == {"float", "quant"}
    ev = csi.evaluate(csi.CsiConfig(arch="convsqucsinet", cr=32, bits="w4a4"), ck)
    assert rep["nmse_db"] == ev["nmse_db"]  # the report's NMSE is the test-set evaluation
    exported = json.loads((out / "export" / "export_report.json").read_text())
    assert exported["variant"] == "convsqucsinet_cr32_w4a4c8_indoor"
