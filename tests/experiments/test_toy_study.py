"""A new study is one file: a toy study (tests/experiments/toy_studies/toy_sweep.py, as a user
would drop it into experiments/studies/) is discovered, run and resumed through the registry and
the public kit, with no edit to the registry, the CLI or any list."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from experiments import registry, studies

TOY_STUDIES = Path(__file__).parent / "toy_studies"


@pytest.fixture
def toy_study(monkeypatch):
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(TOY_STUDIES)])
    yield
    registry.EXPERIMENTS.pop("toy-sweep", None)
    sys.modules.pop("experiments.studies.toy_sweep", None)


def test_toy_study_is_discovered_run_and_resumed(toy_study, tmp_path):
    assert "toy-sweep" in registry.experiment_names()
    first = registry.run_experiment("toy-sweep", tmp_path, grid="small")
    assert first["computed"] == ["f1", "f2"]
    assert [r["ber_ratio"] for r in first["rows"]] == [1.0, 2.0]
    for ext in ("json", "md", "png"):
        assert (tmp_path / f"toy-sweep.{ext}").stat().st_size > 0
    assert "| f2 | 2.0 |" in (tmp_path / "toy-sweep.md").read_text()
    again = registry.run_experiment("toy-sweep", tmp_path, grid="small")
    assert again["computed"] == []
    assert again["rows"] == json.loads((tmp_path / "toy-sweep.json").read_text())["rows"]


def test_a_broken_study_fails_discovery_loudly(monkeypatch, tmp_path):
    (tmp_path / "broken_study.py").write_text("import no_such_module_here\n")
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(tmp_path)])
    with pytest.raises(ImportError, match="study experiments.studies.broken_study failed"):
        registry.discover()
