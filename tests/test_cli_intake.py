"""`qphy build onnx` options: what the subcommand does not use is refused, --input-precision
is checked before any work (exit 2, one line, nothing written)."""

from __future__ import annotations

import pytest

from qphy.cli import main


@pytest.mark.parametrize(
    "args,match",
    [
        (["--bits", "w2a2"], "--bits: not used by `build onnx`"),
        (["--checkpoint-dir", "ck"], "--checkpoint-dir: not used by `build onnx`"),
        (["--input-precision", "fixed<12,4>"], "12 bits; the RTL layers take 2..8-bit inputs"),
        (["--input-precision", "double"], "expected fixed<W,I>, ufixed<W,I>, int<W> or uint<W>"),
    ],
)
def test_build_onnx_refuses_unused_and_bad_options(args, match, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["build", "onnx", "model.onnx", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ConfigError" in err[0] and match in err[0]
    assert not out.exists()


def test_input_precision_is_for_onnx_files_only(tmp_path, capsys):
    argv = ["build", "detector", "--input-precision", "fixed<8,3>", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--input-precision: for `build onnx` only" in capsys.readouterr().err
