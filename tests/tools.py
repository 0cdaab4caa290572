"""Test helpers shared across the test packages."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from hw.toolchain import find_tool, in_ci


def tool_or_skip(name: str, how: str) -> Path:
    """The path of tool ``name``: a skip locally when it is missing, a failure in CI (where
    every tool the project installs must be there)."""
    path = find_tool(name)
    if path is None:
        msg = f"{name} not found in the venv or on PATH ({how})"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def sigint_as_default() -> None:
    """``preexec_fn`` for a child a test will SIGINT: a shell's background job (``cmd &``,
    ``nohup``) starts with SIGINT ignored, which every child inherits, and Python then never
    raises KeyboardInterrupt; restoring the default keeps such a test meaningful there too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_small_grid(name: str, out: Path) -> dict:
    """``qphy experiment NAME --out OUT --grid small`` through the CLI (exit 0 asserted); its
    summary (``OUT/NAME.json``)."""
    from qphy.cli import main  # noqa: PLC0415

    assert main(["experiment", name, "--out", str(out), "--grid", "small"]) == 0
    return json.loads((Path(out) / f"{name}.json").read_text())
