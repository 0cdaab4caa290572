"""A new network is one folder: a toy family (tests/flow/toy_family/toy/, as a user would drop it
into models/) is discovered, and built to a bit-exact verdict through the CLI, with no edit to
the CLI, hw, sim or any list (the point of the Target registry and family discovery)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qphy import targets
from qphy.cli import main

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


TOY_FAMILIES = Path(__file__).parent / "toy_family"


@pytest.fixture
def toy_registered(monkeypatch):
    import models

    # The folder beside models/: one more place discovery scans, as if toy/ sat in models/.
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(TOY_FAMILIES)])
    assert "toy-mlp" in targets.target_names()
    yield
    targets.unregister("toy-mlp")
    sys.modules.pop("models.toy", None)


def test_toy_target_builds_bit_exact_through_the_cli(verilator, toy_registered, tmp_path):
    out = tmp_path / "toy"
    assert main(["build", "toy-mlp", "--bits", "w4a4", "--hidden", "16", "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["variant"] == "toymlp_w4a4_h16"
    assert rep["bit_exact"] is True and rep["mismatches"] == 0 and rep["vectors_checked"] == 300
    assert rep["within_budget"] is True and rep["latency_cycles"] > 0
    # The target's own option is refused for another target, by name.
    assert main(["build", "detector", "--hidden", "8", "--out", str(tmp_path / "x")]) == 2
