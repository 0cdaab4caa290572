"""Shared test set-up: tool discovery that skips locally and fails in CI."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool_or_skip(tool: str) -> str:
    """Path of ``tool``; a skip locally, a failure in CI (RTL simulation is a CI feature)."""
    path = shutil.which(tool)
    if path is None:
        msg = f"'{tool}' not on PATH (run `make setup`)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path
