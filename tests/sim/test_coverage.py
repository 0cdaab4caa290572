"""Corner vectors and the coverage block (sim/coverage.py): the first MVAU's accumulators reach
the bound of their weights exactly, every figure comes from the simulated vectors, and an
accumulator outside its width is a named error."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from qphy.errors import AccumulatorOverflowError
from sim import coverage as cov
from sim.verdict import VECTORS_EXPECTED, VECTORS_IN, judge


def _layers(out):
    layers, in_range, unsupported = cov.load_layers(out / "hw")
    assert not unsupported and [layer.kind for layer in layers][:2] == ["mvau", "thresholds"]
    return layers, in_range


@pytest.mark.rtl
def test_report_carries_coverage_with_corner_vectors(small_rtl):
    out, report = small_rtl
    block = json.loads((out / "report.json").read_text())["coverage"]
    layers, _ = _layers(out)
    n_corners = 2 * sum(layer.params.shape[1] for layer in layers if layer.kind == "mvau")
    assert block["corner_vectors"] == n_corners and block["model_agrees"] is True
    first = block["accumulators"][layers[0].name]
    assert first["reached"] == first["bound"]  # exact corners for the first layer
    assert first["channels_max_at_bound"] == first["channels_min_at_bound"] == 1.0
    for acc in block["accumulators"].values():
        lo, hi = acc["acc_range"]
        assert not acc["overflow"] and lo <= acc["reached"][0] <= acc["reached"][1] <= hi
    assert all(0.0 < t["fraction"] <= 1.0 for t in block["thresholds"].values())
    assert report.bit_exact and report.vectors_checked == 1000  # corners replace, not add


@pytest.mark.rtl
def test_corner_vectors_steer_deeper_layers_further_than_random(small_rtl):
    out, _ = small_rtl
    layers, in_range = _layers(out)
    x = np.load(out / "sim" / VECTORS_IN)
    n_c = json.loads((out / "report.json").read_text())["coverage"]["corner_vectors"]
    random_only = cov.coverage(layers, in_range, x[:-n_c], 0)["accumulators"]
    with_corners = cov.coverage(layers, in_range, x, n_c)["accumulators"]
    second = [layer.name for layer in layers if layer.kind == "mvau"][1]
    assert with_corners[second]["reached"][1] > random_only[second]["reached"][1]
    assert with_corners[second]["reached"][0] < random_only[second]["reached"][0]


@pytest.mark.rtl
def test_accumulator_overflow_is_a_named_error(small_rtl, tmp_path):
    out, report = small_rtl
    layers, in_range = _layers(out)
    narrow = [dataclasses.replace(layers[0], lo=-1000, hi=999, dtype="INT11"), *layers[1:]]
    x = np.load(out / "sim" / VECTORS_IN)
    block = cov.coverage(narrow, in_range, x, 0, np.load(out / "sim" / VECTORS_EXPECTED))
    assert block["accumulators"][layers[0].name]["overflow"]
    with pytest.raises(AccumulatorOverflowError, match=rf"{layers[0].name}: reached .* INT11"):
        judge(dataclasses.replace(report, coverage=block), tmp_path)
    # A model that does not agree with the golden integers judges nothing.
    block["model_agrees"] = False
    judge(dataclasses.replace(report, coverage=block), tmp_path)
