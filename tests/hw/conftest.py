"""Fixtures of the hw tests: a small exported QAT FullyCon (no Verilator needed)."""

from __future__ import annotations

import pytest

from tests.hw.fixture_export import make_export


@pytest.fixture(scope="session")
def small_export(tmp_path_factory):
    """30 -> 2x64 -> 20 w4a4 export directory with 256 golden vectors (half saturating)."""
    return make_export(tmp_path_factory.mktemp("export_small"), bits="w4a4", n_golden=256)
