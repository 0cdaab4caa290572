"""bitstreams: Vivado discovery, atomic output directories and the run plumbing (a stand-in
vivado, real Vivado when installed, the CLI's ToolNotFound line)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bitstreams import build
from hw.toolchain import require_vivado
from qphy.errors import ConfigError, ToolNotFound
from tests.bitstreams.vivado_samples import POWER_SAMPLE, TIMING_SAMPLE, UTIL_SAMPLE

# ---- Vivado discovery, atomicity, and the run plumbing with a stand-in vivado --------------


@pytest.fixture
def no_vivado(monkeypatch, tmp_path):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("XILINX_VIVADO", raising=False)


def _siblings(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith((name, f".{name}")))


def test_run_vivado_without_vivado_writes_nothing(no_vivado, tmp_path):
    out = tmp_path / "bits"
    with pytest.raises(ToolNotFound, match="vivado.*-v /tools/Xilinx:/tools/Xilinx:ro"):
        build.run_vivado(out, "ooc")
    assert not out.exists() and _siblings(tmp_path, "bits") == []


def test_build_bitstream_without_vivado_writes_nothing(no_vivado, hw_dir, tmp_path):
    out = tmp_path / "bits"
    with pytest.raises(ToolNotFound, match="XILINX_VIVADO"):
        build.build_bitstream(hw_dir, "zcu104", out)
    assert not out.exists() and _siblings(tmp_path, "bits") == []


def test_run_vivado_without_vivado_keeps_generated_flow(no_vivado, hw_dir, tmp_path):
    out = tmp_path / "bits"
    build.generate(hw_dir, "zcu104", out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ToolNotFound):
        build.run_vivado(out, "bitstream")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_bad_mode_is_a_config_error(hw_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown Vivado mode 'impl'"):
        build.run_vivado(tmp_path / "x", "impl")


#: A stand-in for vivado: writes the hand-written report samples and the outputs the flow
#: would, so the Python side (discovery, run, parse, manifest, atomic publish) is exercised.
FAKE_VIVADO = """#!/bin/sh
log=""; script=""
while [ $# -gt 0 ]; do
  case "$1" in -log) log="$2"; shift;; -source) script="$2"; shift;; esac; shift
done
echo "****** Vivado v2024.2 (64-bit)" > "$log"
[ -n "$FAIL" ] && { echo "ERROR: [Synth 8-439] module 'x' not found" >> "$log"; exit 1; }
mkdir -p reports
case "$script" in *ooc.tcl) p=ooc_;; *) p=;; esac
cp "$SAMPLES/util.rpt" reports/${p}utilization.rpt
cp "$SAMPLES/timing.rpt" reports/${p}timing_summary.rpt
cp "$SAMPLES/power.rpt" reports/${p}power.rpt
case "$script" in *bitstream.tcl)
  printf 'requested_mhz 200\\npl_clk0_mhz 187.498\\n' > reports/clock.txt
  for e in bit hwh xsa; do echo x > fullycon_w4a4_zcu104.$e; done;;
esac
"""


@pytest.fixture
def fake_vivado(monkeypatch, tmp_path):
    root = tmp_path / "Xilinx" / "Vivado" / "2024.2"
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "vivado"
    exe.write_text(FAKE_VIVADO)
    exe.chmod(0o755)
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "util.rpt").write_text(UTIL_SAMPLE)
    (samples / "timing.rpt").write_text(TIMING_SAMPLE)
    (samples / "power.rpt").write_text(POWER_SAMPLE)
    empty = tmp_path / "empty_bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("XILINX_VIVADO", str(root))
    monkeypatch.setenv("SAMPLES", str(samples))
    monkeypatch.delenv("FAIL", raising=False)
    return exe


def test_require_vivado_under_xilinx_vivado(fake_vivado):
    assert require_vivado() == fake_vivado


def test_build_bitstream_with_stand_in_vivado(fake_vivado, hw_dir, tmp_path):
    out = tmp_path / "bits"
    result = build.build_bitstream(hw_dir, "zcu104", out, "bitstream", jobs=2)
    assert result["vivado"] == "2024.2"
    rep = result["reports"]
    assert rep["utilization"]["LUT"]["used"] == 12345
    assert rep["power"]["total_on_chip_w"] == 3.912
    # Fmax against the clock the PS really makes (187.498 MHz)
    assert rep["timing"]["fmax_mhz"] == pytest.approx(1000 / (1000 / 187.498 + 0.25), abs=0.01)
    record = json.loads((out / "bitstream_manifest.json").read_text())
    outs = record["runs"]["bitstream"]["outputs_sha256"]
    assert {"fullycon_w4a4_zcu104.bit", "fullycon_w4a4_zcu104.hwh"} <= set(outs)
    assert _siblings(tmp_path, "bits") == ["bits"]
    # then the OOC flow on the same directory keeps the bitstream run
    run = build.run_vivado(out, "ooc")
    assert run["reports"]["timing"]["fmax_mhz"] == pytest.approx(1000 / 5.25, abs=0.01)
    record = json.loads((out / "bitstream_manifest.json").read_text())
    assert set(record["runs"]) == {"bitstream", "ooc"}
    assert (out / "fullycon_w4a4_zcu104.bit").is_file()


def test_failed_vivado_leaves_no_out_dir_but_its_log(fake_vivado, hw_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIL", "1")
    out = tmp_path / "bits"
    with pytest.raises(build.VivadoError, match=r"ERROR: \[Synth 8-439\]"):
        build.build_bitstream(hw_dir, "zcu104", out, "ooc")
    assert not out.exists()
    assert _siblings(tmp_path, "bits") == ["bits.vivado_ooc.log"]


# ---- real Vivado ---------------------------------------------------------------------------


@pytest.fixture
def vivado():
    try:
        return require_vivado()
    except ToolNotFound as exc:
        pytest.skip(str(exc))


@pytest.mark.vivado
@pytest.mark.slow
def test_ooc_synthesis_with_vivado(vivado, hw_dir, tmp_path):
    run = build.build_bitstream(hw_dir, "zcu104", tmp_path / "bits", "ooc", timeout_s=3600)
    assert run["reports"]["utilization"]["LUT"]["used"] > 0
    assert run["reports"]["timing"]["met"]


@pytest.mark.vivado
@pytest.mark.slow
def test_bitstream_with_vivado(vivado, hw_dir, tmp_path):
    run = build.build_bitstream(hw_dir, "zcu104", tmp_path / "bits", timeout_s=4 * 3600)
    assert (tmp_path / "bits" / "fullycon_w4a4_zcu104.bit").is_file()
    assert run["reports"]["power"]["total_on_chip_w"] > 0


@pytest.mark.parametrize("command", ["bitstream", "synth"])
def test_cli_without_vivado_is_one_line_tool_not_found(command, hw_dir, tmp_path):
    """`qphy bitstream|synth` without Vivado: one line naming how to mount it, a non-zero exit,
    and nothing written."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "XILINX_VIVADO"}
    env["PATH"] = str(tmp_path / "empty")
    out = tmp_path / "bits"
    res = subprocess.run(
        [sys.executable, "-m", "qphy.cli", command, str(hw_dir), "--board", "zcu104"]
        + ["--out", str(out)]
        # without --tool, `qphy synth` falls back to Yosys when Vivado is absent
        + (["--tool", "vivado"] if command == "synth" else []),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("qphy: error: ToolNotFound: required tool"), (
        res.stderr
    )
    assert "XILINX_VIVADO" in lines[0]
    assert not out.exists() and _siblings(tmp_path, "bits") == []
