"""The CLI's --out rules and one-line errors, as a user meets them (issue: never lose a user's
files). Every refusal happens before any work, exits 2 and leaves every file in place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qphy.cli import main
from tests.hw.onnx_graphs import tiny_mlp_graph

ROOT = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture()
def proj(tmp_path, monkeypatch):
    """A user's project folder holding a model and a notes file; the working directory."""
    d = tmp_path / "proj"
    d.mkdir()
    tiny_mlp_graph(d / "my.onnx")
    (d / "notes.txt").write_text("mine, not qphy's")
    monkeypatch.chdir(d)
    return d


def _err(capsys) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("qphy:")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("out", [".", "..", "{proj}"])
def test_out_dot_and_parents_leave_every_file(proj, capsys, out):
    before = _tree(proj.parent)
    assert main(["build", "onnx", "my.onnx", "--out", out.format(proj=proj)]) == 2
    assert "is the working directory or a folder above it" in _err(capsys)
    assert _tree(proj.parent) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "onnx", "{model}", "--out", "{foreign}"],
        ["build", "detector", "--out", "{foreign}"],
        ["export", "detector", "--out", "{foreign}"],
        ["evaluate", "detector", "--out", "{foreign}"],
        ["experiment", "fullycon-pruning", "--grid", "small", "--out", "{foreign}"],
    ],
    ids=["build-onnx", "build", "export", "evaluate", "experiment"],
)
def test_foreign_non_empty_folder_is_refused_and_left_in_place(proj, tmp_path, capsys, argv):
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "paper.tex").write_text("\\section{mine}")
    before = _tree(tmp_path)
    args = [a.format(model=proj / "my.onnx", foreign=foreign) for a in argv]
    assert main(args) == 2
    assert "not empty and is not a qphy output" in _err(capsys)
    assert _tree(tmp_path) == before


def test_folder_holding_the_model_and_a_file_are_refused(proj, tmp_path, capsys):
    sub = tmp_path / "models"
    sub.mkdir()
    tiny_mlp_graph(sub / "m.onnx")
    assert main(["build", "onnx", str(sub / "m.onnx"), "--out", str(sub)]) == 2
    assert "holds the input" in _err(capsys)
    assert main(["build", "onnx", "my.onnx", "--out", "notes.txt"]) == 2
    assert "is a file, not a folder" in _err(capsys)
    assert (proj / "notes.txt").read_text() == "mine, not qphy's"


def test_missing_model_and_unused_options_exit_2(proj, capsys):
    assert main(["build", "onnx", "nothere.onnx", "--out", "b"]) == 2
    assert "nothere.onnx: no such model file" in _err(capsys)
    assert main(["build", "onnx", "my.onnx", "--bits", "w2a2", "--out", "b"]) == 2
    assert "--bits: not used by `build onnx`" in _err(capsys)
    assert main(["build", "onnx", "my.onnx", "--layers", "3", "--out", "b"]) == 2
    assert "--layers: not used by `build onnx`" in _err(capsys)
    assert not (proj / "b").exists()


def test_batch_four_graph_is_refused_with_the_hint(proj, capsys):
    tiny_mlp_graph(proj / "b4.onnx", batch=4)
    assert main(["build", "onnx", "b4.onnx", "--out", "b"]) == 1
    err = _err(capsys)
    assert "MalformedModelError: graph input 'x' has batch 4" in err
    assert "export the model with batch 1" in err
    assert not (proj / "b").exists()
    assert sorted(p.name for p in proj.iterdir()) == ["b4.onnx", "my.onnx", "notes.txt"]


@pytest.mark.rtl
def test_infeasible_clock_is_one_line_and_leaves_nothing(proj):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "qphy.cli", "build", "onnx", "my.onnx", "--out", "b"]
        + ["--clock-mhz", "2000", "--vectors", "20"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=proj,
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("qphy:")]
    assert len(lines) == 1 and "HwStepError: hw step" in lines[0], res.stderr
    assert "Infeasible clk target of 0.5 ns" in lines[0]
    assert sorted(p.name for p in proj.iterdir()) == ["my.onnx", "notes.txt"]
