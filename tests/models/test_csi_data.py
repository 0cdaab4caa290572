"""Tests of the CSI data generation (models/csi/channel.py, data.py, store.py): tiny sets in
tmp dirs."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch

from models.csi.channel import angular_delay, delay_taps, frequency_response, generate
from models.csi.data import (
    CsiDataConfig,
    CsiDataset,
    Scenario,
    csi_statistics,
    nmse_db,
    nmse_db_scaled,
    scale_to_unit,
    scaled_to_complex,
    split,
)
from models.csi.store import load_or_generate, load_splits
from qphy.errors import ConfigError

N_TINY = 16
SCENARIOS = list(Scenario)


def tiny(scenario: Scenario, seed: int = 7, **kw) -> CsiDataConfig:
    return CsiDataConfig(scenario=scenario, n_samples=N_TINY, seed=seed, batch_size=8, **kw)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("csi_cache")


@pytest.fixture(scope="module")
def sets(cache_dir):
    torch.set_num_threads(1)
    out = {}
    for sc in SCENARIOS:
        start = time.perf_counter()
        ds = load_or_generate(tiny(sc), cache_dir, show_progress=False)
        out[sc] = (ds, time.perf_counter() - start)
    return out


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scenario": "rooftop"}, "unknown CSI scenario 'rooftop'; known: indoor, outdoor"),
        ({"n_delay_taps": 2048}, "n_delay_taps=2048 exceeds n_subcarriers=1024"),
        ({"n_samples": 0}, "n_samples must be a positive integer"),
        ({"n_antennas": -32}, "n_antennas must be a positive integer"),
        ({"n_subcarriers": 10.5}, "n_subcarriers must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"carrier_frequency_hz": 0.0}, "carrier_frequency_hz must be positive"),
        ({"subcarrier_spacing_hz": -15e3}, "subcarrier_spacing_hz must be positive"),
    ],
)
def test_bad_config_is_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CsiDataConfig(**kwargs)


def test_config_defaults_and_derived_values():
    indoor, outdoor = CsiDataConfig(scenario="indoor"), CsiDataConfig(scenario=Scenario.OUTDOOR)
    assert indoor.scenario is Scenario.INDOOR
    assert indoor.carrier_frequency_hz == 5.3e9 and outdoor.carrier_frequency_hz == 3.5e9
    assert (indoor.n_antennas, indoor.n_subcarriers, indoor.n_delay_taps) == (32, 1024, 32)
    assert indoor.bandwidth_hz == pytest.approx(30.72e6)
    assert indoor.codeword_input_size == 2048
    assert CsiDataConfig(carrier_frequency_hz=2e9).carrier_frequency_hz == 2e9


def test_cache_key_is_content_hash(tmp_path):
    a = tiny(Scenario.INDOOR)
    assert a.cache_key() == tiny(Scenario.INDOOR).cache_key()
    assert a.cache_key() != tiny(Scenario.INDOOR, seed=8).cache_key()
    assert a.cache_key() != tiny(Scenario.OUTDOOR).cache_key()
    assert a.cache_path(tmp_path).parent == tmp_path
    assert a.cache_path(tmp_path).name.startswith("csi_indoor_n16_s7_")


# --- generated sets -------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.value)
def test_shapes_and_range(sets, scenario):
    ds, _ = sets[scenario]
    assert ds.x.shape == (N_TINY, 2, 32, 32) and ds.x.dtype == np.float32
    assert ds.peak.shape == (N_TINY,) and np.all(ds.peak > 0)
    assert ds.x.min() >= 0.0 and ds.x.max() <= 1.0
    # Per-sample scaling: the largest component of every sample touches 0 or 1.
    reach = np.abs(ds.x - 0.5).reshape(N_TINY, -1).max(axis=1)
    np.testing.assert_allclose(reach, 0.5, atol=1e-6)
    assert np.isfinite(ds.x).all()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.value)
def test_second_call_hits_the_cache(sets, cache_dir, scenario):
    first, gen_s = sets[scenario]
    path = first.config.cache_path(cache_dir)
    mtime = path.stat().st_mtime_ns
    start = time.perf_counter()
    again = load_or_generate(first.config, cache_dir, show_progress=False)
    load_s = time.perf_counter() - start
    assert path.stat().st_mtime_ns == mtime
    assert list(cache_dir.glob(f"csi_{scenario.value}_*.npz")) == [path]
    assert not list(cache_dir.glob("*.tmp"))
    assert np.array_equal(again.x, first.x) and np.array_equal(again.peak, first.peak)
    assert load_s < gen_s


def test_generation_is_reproducible_and_seeded(sets):
    ds, _ = sets[Scenario.OUTDOOR]
    torch.manual_seed(123)
    want_next = torch.rand(3)
    torch.manual_seed(123)
    fresh = generate(ds.config, show_progress=False)
    assert torch.equal(torch.rand(3), want_next)  # global torch RNG left alone
    assert np.array_equal(fresh.x, ds.x)
    other = generate(tiny(Scenario.OUTDOOR, seed=8), show_progress=False)
    assert not np.allclose(other.x, ds.x)


def test_samples_differ_and_scenarios_differ(sets):
    stats = {sc: csi_statistics(sets[sc][0]) for sc in SCENARIOS}
    for st in stats.values():
        assert st.magnitude_similarity < 0.6  # not near-identical samples
        assert st.complex_similarity < 0.3
    indoor, outdoor = stats[Scenario.INDOOR], stats[Scenario.OUTDOOR]
    # InH: short delays (tens of ns), energy in a few entries; UMi spreads over more taps.
    assert indoor.entries_for_90pct * 2 < outdoor.entries_for_90pct
    assert indoor.delay_spread_taps < outdoor.delay_spread_taps


def test_corrupt_cache_file_is_regenerated(tmp_path, caplog):
    cfg = CsiDataConfig(scenario="indoor", n_samples=4, seed=3, batch_size=4)
    path = cfg.cache_path(tmp_path)
    path.write_bytes(b"not a zip")
    with caplog.at_level(logging.WARNING):
        ds = load_or_generate(cfg, tmp_path, show_progress=False)
    assert "ignoring unreadable CSI cache" in caplog.text
    assert len(ds) == 4
    assert np.array_equal(load_or_generate(cfg, tmp_path, show_progress=False).x, ds.x)


def test_splits(sets, cache_dir):
    ds, _ = sets[Scenario.INDOOR]
    parts = split(ds, (0.5, 0.25, 0.25))
    assert [len(p) for p in parts] == [8, 4, 4]
    np.testing.assert_array_equal(np.concatenate([p.x for p in parts]), ds.x)
    assert [len(p) for p in load_splits(ds.config, cache_dir, show_progress=False)] == [11, 2, 3]
    with pytest.raises(ConfigError, match="split fractions must be 3 positive numbers"):
        split(ds, (0.8, 0.3, -0.1))
    with pytest.raises(ConfigError, match="too few"):
        split(ds.subset(0, 3), (0.9, 0.05, 0.05))


# --- processing -----------------------------------------------------------------------------


def test_closed_form_taps_equal_ifft_of_frequency_response():
    gen = torch.Generator().manual_seed(0)
    b, a, p = 3, 4, 6
    coeffs = torch.complex(torch.randn(b, a, p, generator=gen), torch.randn(b, a, p, generator=gen))
    delays = torch.rand(b, p, generator=gen) * 2e-6
    delays[:, 0] = 0.0  # exactly on a tap: the kernel's removable singularity
    h = frequency_response(coeffs, delays, 256, 30e3)
    want = torch.fft.ifft(h, dim=-1)[..., :16]
    got = delay_taps(coeffs, delays, 256, 30e3, 16)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
    assert angular_delay(got).shape == (b, 16, a)


def test_scaling_round_trip():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(5, 32, 32)) + 1j * rng.normal(size=(5, 32, 32))
    x, peak = scale_to_unit(h)
    ds = CsiDataset(x, peak, CsiDataConfig(n_samples=5))
    np.testing.assert_allclose(ds.complex_matrices(), h, atol=1e-5 * np.abs(h).max())
    assert ds.tensor().shape == (5, 2, 32, 32)


# --- NMSE -----------------------------------------------------------------------------------


def test_nmse(sets):
    x = sets[Scenario.OUTDOOR][0].x
    h = scaled_to_complex(x)
    assert nmse_db(h, h) == -np.inf
    assert nmse_db(h, np.zeros_like(h)) == pytest.approx(0.0, abs=1e-9)
    assert nmse_db_scaled(x, np.full_like(x, 0.5)) == pytest.approx(0.0, abs=1e-6)
    # A uniform 10 % amplitude error is -20 dB, whatever the per-sample scale.
    assert nmse_db(h * 7.0, h * 7.0 * 1.1) == pytest.approx(-20.0, abs=1e-4)
    # torch and numpy agree; the scaled NMSE equals the NMSE of the unscaled matrices.
    noisy = np.clip(x + 0.01 * np.random.default_rng(1).normal(size=x.shape), 0, 1)
    noisy = noisy.astype(np.float32)
    ref = nmse_db_scaled(x, noisy)
    assert nmse_db_scaled(torch.from_numpy(x), torch.from_numpy(noisy)) == pytest.approx(ref)
    ds = sets[Scenario.OUTDOOR][0]
    unscaled_hat = scaled_to_complex(noisy) * (2 * ds.peak)[:, None, None]
    assert nmse_db(ds.complex_matrices(), unscaled_hat) == pytest.approx(ref, abs=1e-4)
