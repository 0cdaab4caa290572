"""The stage contracts: JSON round trips, refusal of other versions and unknown keys, and the
atomic-write helpers every stage uses."""

from __future__ import annotations

import json

import pytest

from qphy.contracts import (
    REPORT_KEYS,
    HostOp,
    HostSpec,
    Manifest,
    NodeSpec,
    QuantSpec,
    Report,
    SimJob,
    StreamSpec,
)
from qphy.errors import ContractError
from qphy.fsutil import StagedDir, atomic_write_json

STREAM = StreamSpec("INT8", 8, True, 30, 1, 240)
HOST = HostSpec(
    QuantSpec([0.125], 8, True, False),
    [30],
    "INT8",
    "INT8",
    input_pre=[HostOp("Sub", 0.5), HostOp("Mul", 16.0)],
    output_tail=[HostOp("Mul", 0.0625)],
    decision="sign",
)
MANIFEST = Manifest(
    fpga_part="xczu3eg-sbva484-1-e",
    clock_mhz=200.0,
    input=STREAM,
    output=StreamSpec("INT8", 8, True, 20, 1, 160),
    nodes=[NodeSpec("MVAU_rtl_0", "MVAU_rtl", "MVAU_rtl_0", 240, 160, ["a.sv"])],
    host=HOST,
    analytic_cycles_per_frame=200,
    analytic_latency_cycles=900,
)


def _report(**extras) -> Report:
    return Report(
        "fullycon_w4a4_fixed", True, 10, 0, 776, 200, 200.0, 3.88, 1e6, 1000.0, True, "p",
        {"LUT": 1}, {}, {"qonnx": "1.0.0"}, extras=extras,
    )  # fmt: skip


@pytest.mark.parametrize("obj", [MANIFEST, _report(nmse_db={"float": -13.1})])
def test_round_trip_through_a_file(obj, tmp_path):
    path = obj.write(tmp_path / "x.json")
    assert type(obj).read(path) == obj


def test_report_keys_then_extras():
    on_disk = _report(nmse_db={"float": -1.0}).to_json()
    assert list(on_disk)[: len(REPORT_KEYS)] == list(REPORT_KEYS)
    assert on_disk["nmse_db"] == {"float": -1.0} and on_disk["version"] == Report.VERSION
    with pytest.raises(ContractError, match="would overwrite"):
        _report(variant="other").to_json()


@pytest.mark.parametrize("cls", [Manifest, Report, SimJob])
def test_unknown_version_is_refused_by_name(cls, tmp_path):
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(ContractError, match=rf"{cls.__name__} version 99 is not the one"):
        cls.read(path)


def test_unknown_and_missing_keys_are_refused():
    data = MANIFEST.to_json()
    with pytest.raises(ContractError, match=r"unknown key\(s\) \['colour'\]"):
        Manifest.from_json({**data, "colour": "red"})
    del data["host"]["input_quant"]
    with pytest.raises(ContractError, match=r"HostSpec: missing key\(s\) \['input_quant'\]"):
        Manifest.from_json(data)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(ContractError, match="no such Manifest file"):
        Manifest.read(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ContractError, match="unreadable Manifest"):
        Manifest.read(tmp_path / "bad.json")


def test_staged_dir_publishes_whole_or_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), StagedDir(out) as staged:
        atomic_write_json(staged.path / "a.json", {"a": 1})
        raise RuntimeError("half-way")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with StagedDir(out) as staged:
        atomic_write_json(staged.path / "a.json", {"a": 2})
        staged.publish()
    assert json.loads((out / "a.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
