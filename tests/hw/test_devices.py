"""The one device table: FINN-sourced rows equal FINN's tables; lookups and fit basis."""

from __future__ import annotations

import pytest

from hw.devices import DEVICES, capacity, device_name, require_device
from hw.fit import estimated_fit
from qphy.errors import ConfigError


def test_finn_sourced_rows_equal_finn_tables():
    from finn.util.platforms import platforms

    finn_rows = [d for d in DEVICES.values() if d.source.startswith("finn:")]
    assert len(finn_rows) == 5
    for dev in finn_rows:
        finn_cap = platforms[dev.source.removeprefix("finn:")]().compute_resources[0]
        assert list(dev.capacity.values()) == [int(v) for v in finn_cap], dev.name


@pytest.mark.parametrize(
    ("part", "name", "family"),
    [
        ("xczu3eg-sbva484-1-e", "xczu3eg", "xcup"),
        ("xczu7ev-ffvc1156-2-e", "xczu7ev", "xcup"),
        ("xczu48dr-ffvg1517-2-e", "xczu48dr", "xcup"),
        ("xc7z020clg400-1", "xc7z020", "xc7"),
        ("XCK26-SFVC784-2LV-C", "xck26", "xcup"),
    ],
)
def test_part_to_device(part, name, family):
    assert device_name(part) == name
    assert require_device(part).family == family


def test_every_board_part_has_a_row():
    from bitstreams.boards import BOARDS

    for b in BOARDS.values():
        assert capacity(b.part) is not None, b.name
        assert b.capacity == capacity(b.part)


def test_unknown_part_is_a_config_error_and_no_fit():
    with pytest.raises(ConfigError, match="no device table row for xcvu9p-flga2104-2-i"):
        require_device("xcvu9p-flga2104-2-i")
    fit = estimated_fit({"LUT": 1}, "xcvu9p-flga2104-2-i")
    assert fit["fits"] is None and "no resource table" in fit["reason"]


def test_fit_prefers_synthesized_counts():
    est = {"LUT": 8294, "BRAM_18K": 76, "URAM": 0, "DSP": 164}
    synth = {"LUT": 80000, "FF": 1000, "BRAM_18K": 0, "URAM": 0, "DSP": 170}
    on_est = estimated_fit(est, "xczu3eg-sbva484-1-e")
    on_synth = estimated_fit(est, "xczu3eg-sbva484-1-e", synth)
    assert on_est["basis"] == "estimate" and on_est["fits"] is True
    assert on_synth["basis"] == "yosys" and on_synth["over"] == ["LUT"]
    assert on_synth["utilisation"]["LUT"] == pytest.approx(80000 / 71000, abs=1e-4)
