"""Test helpers shared across the test packages."""

from __future__ import annotations

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
