import subprocess
import sys

import pytest

from qphy.cli import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qphy.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("bits", ["w9a4", "x", "w4a0"])
def test_bad_bits_is_one_line_config_error_exit_2(bits, tmp_path):
    res = _run("export", "detector", "--bits", bits, "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("qphy: error: ConfigError: bad bit widths")
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()


def test_unknown_command_and_target_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    assert main(["export", "modem", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err and "invalid choice: 'modem'" in err


def test_bad_channel_exit_2(capsys):
    assert main(["evaluate", "detector", "--channel", "rayleigh", "--out", "x"]) == 2
    assert "invalid choice: 'rayleigh'" in capsys.readouterr().err


def test_unknown_csi_arch_is_one_line_config_error_exit_2(tmp_path):
    out = tmp_path / "o"
    res = _run("build", "csi-encoder", "--arch", "csinet3", "--cr", "4", "--out", str(out))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("qphy: error: ConfigError:"), res.stderr
    assert "csinet3" in lines[0] and "convsqucsinet" in lines[0]
    assert not out.exists()


def test_csi_options_with_the_detector_and_channel_with_csi_exit_2(capsys):
    assert main(["build", "detector", "--arch", "csinetplus", "--out", "x"]) == 2
    assert main(["build", "csi-encoder", "--layers", "3", "--out", "x"]) == 2
    assert main(["build", "detector", "--layers", "3", "--out", "x"]) == 2
    assert main(["train", "csi-encoder", "--channel", "iid"]) == 2
    assert main(["build", "csi-encoder", "--cr", "5", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "argument --arch: invalid choice: 'csinetplus' (choose from fullycon, detnet)" in err
    assert "--layers: for detector only, not the csi-encoder" in err
    assert "--layers: for --arch detnet only" in err
    assert "--channel: for detector only, not the csi-encoder" in err
    assert "invalid choice: 5" in err
