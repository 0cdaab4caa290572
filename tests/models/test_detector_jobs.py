import argparse
import json

import numpy as np
import pytest
import torch

from models.detector.config import QuantConfig
from models.detector.evaluate import evaluate_ber, snr_at_ber, write_ber
from models.detector.fullycon import FullyCon
from models.detector.jobs import load_or_train, trained_otherwise
from models.detector.train import train_float
from qphy import targets
from qphy.flow import export_stage
from qphy.variants import Bits
from quant import checkpoint


def test_float_training_learns(tmp_path):
    cfg = QuantConfig(float_steps=150, batch_size=256, seed=3)
    torch.manual_seed(cfg.seed)
    model, loss = train_float(cfg)
    # Untrained outputs are ~0 against +-1 symbols: MSE ~1. Learning must cut it clearly.
    assert loss < 0.6


def test_snr_at_ber_interpolates_in_log_domain():
    assert snr_at_ber([8, 10], [1e-2, 1e-4], 1e-3) == pytest.approx(9.0)
    assert snr_at_ber([8, 10], [1e-2, 5e-3], 1e-3) is None


def test_evaluate_structure_and_baselines(tmp_path):
    cfg = QuantConfig(bits=Bits(4, 4), eval_snr_db=(8.0, 12.0), eval_bits_per_snr=20_000)
    res = evaluate_ber(cfg, {"float": FullyCon().eval()})
    assert res["snr_db"] == [8.0, 12.0]
    assert set(res["ber"]) == {"float", "zf", "mmse", "ml"}
    assert res["bits_simulated_per_snr"] == 20_000
    # ML is optimal: never worse than MMSE, and better at 8 dB by a wide margin.
    assert res["ber"]["ml"][0] < 0.8 * res["ber"]["mmse"][0]
    assert 0.3 < res["ber"]["float"][0] < 0.7  # an untrained network guesses
    write_ber({**res, "channel": "fixed"}, tmp_path, "t")
    assert json.loads((tmp_path / "ber.json").read_text())["ber"]["ml"] == res["ber"]["ml"]
    assert (tmp_path / "ber.png").stat().st_size > 1000


SHIPPED = checkpoint.path_for("fullycon_w4a4_fixed")


def test_shipped_w4a4_beats_mmse_and_exports_exactly(tmp_path):
    cfg = QuantConfig(bits=Bits(4, 4), eval_snr_db=(10.0, 12.0), eval_bits_per_snr=100_000)
    res = evaluate_ber(cfg, {"w4a4": load_or_train(cfg)})
    for i in range(2):
        assert res["ber"]["w4a4"][i] < res["ber"]["mmse"][i]
    rep = export_stage(targets.get("detector"), cfg, tmp_path / "exp", 1000)
    assert rep["qonnx_matches_torch"] and rep["vectors_checked"] == 1000
    assert rep["saturating_vectors"] == 500
    golden = np.load(tmp_path / "exp" / "golden_out.npy")
    assert golden.shape == (1000, 20)


def test_loading_a_checkpoint_trained_otherwise_warns(caplog):
    # The shipped checkpoint was trained with the defaults: loading it says nothing.
    cfg = QuantConfig(bits=Bits(4, 4))
    with caplog.at_level("WARNING", logger="models.detector.jobs"):
        load_or_train(cfg)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    # Asking for other training settings loads the same file but names what differs.
    caplog.clear()
    with caplog.at_level("WARNING", logger="models.detector.jobs"):
        load_or_train(QuantConfig(bits=Bits(4, 4), qat_steps=800, seed=2))
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "qat_steps=8000 (asked 800)" in warning and "seed=0 (asked 2)" in warning
    assert "fullycon_w4a4_fixed" in warning
    # The same file with the same difference again (e.g. a QAT run's float parent): said once.
    caplog.clear()
    with caplog.at_level("WARNING", logger="models.detector.jobs"):
        load_or_train(QuantConfig(bits=Bits(4, 4), qat_steps=800, seed=2))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_trained_otherwise_names_detnets_mix():
    cfg = QuantConfig(arch="detnet", channel="iid", detnet_mix=0.25)  # a float model's settings
    recorded = {**cfg.to_json(), "detnet_mix": 0.1}
    assert trained_otherwise(cfg, {"qphy_config": recorded}) == {"detnet_mix": (0.1, 0.25)}
    # checkpoints written before the setting existed record none: nothing to compare
    older = {k: v for k, v in recorded.items() if k != "detnet_mix"}
    assert trained_otherwise(cfg, {"qphy_config": older}) == {}


def test_snr_points_lists_and_ranges():
    from models.detector.target import snr_points

    assert snr_points("8:15") == tuple(float(s) for s in range(8, 16))
    assert snr_points("8,10.5,12") == (8.0, 10.5, 12.0)
    for bad in ("12,10", "8,8", "x", "8:", "15:8", "0:1e9"):
        with pytest.raises(argparse.ArgumentTypeError, match="want a list"):
            snr_points(bad)
    cfg = targets.get("detector").config(Bits(4, 4), eval_snr_db=snr_points("8:9"))
    assert cfg.eval_snr_db == (8.0, 9.0)
