"""DetNet training, Green DetNet regularisers and pruning, accounting, evaluation (tiny sizes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.detector.classical import mmse
from models.detector.detnet import DetNet, DetNetShape
from models.detector.detnet_cost import detnet_account, detnet_flops
from models.detector.detnet_train import (
    DetNetTrainConfig,
    detnet_meta,
    evaluate_detnet_ber,
    incremental_train,
    load_detnet,
    make_batches,
    train_detnet,
    validation_loss,
)
from models.detector.green import (
    ColumnGroupLasso,
    SparseGroupLasso,
    column_masks,
    l1_penalty,
    prune_and_finetune,
    threshold_masks,
)
from models.detector.mimo import ChannelKind, DetectionConfig, sample_numpy
from qphy.errors import ConfigError
from quant import checkpoint
from tests.models.conftest import _one_thread  # noqa: F401 - autouse: one torch thread

DET = DetectionConfig(n_rx=6, k_tx=4, channel=ChannelKind.IID_GAUSSIAN)
SHAPE = DetNetShape(n_rx=6, k_tx=4, n_layers=3)
CFG = DetNetTrainConfig(detection=DET, shape=SHAPE, steps=60, batch=64, seed=0)


def _tiny_linear_model() -> torch.nn.Module:
    """One 2x3 linear layer with known weights (columns of norm 5, 0 and 1... see below)."""
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 0.0, -1.0], [4.0, 0.0, 0.0]]))
    return torch.nn.Sequential(lin)


def test_config_rejects_mismatched_shape():
    with pytest.raises(ConfigError, match="does not match"):
        DetNetTrainConfig(detection=DET, shape=DetNetShape())


def test_batches_carry_channel_and_least_squares():
    (y, h), (x, x_ls) = make_batches(CFG, torch.Generator().manual_seed(0))()
    assert y.shape == (64, 6) and h.shape == (64, 6, 4) and x.shape == x_ls.shape == (64, 4)
    ref = np.einsum("bkn,bn->bk", np.linalg.pinv(h.numpy()), y.numpy())
    np.testing.assert_allclose(x_ls.numpy(), ref, atol=1e-3)


def test_regulariser_values_and_gradients():
    model = _tiny_linear_model()
    w = model[0].weight
    zero = torch.zeros(())
    # L1 (R-DetNet): 0.5 * (3 + 1 + 4).
    assert l1_penalty(0.5).loss(model, zero, None, None).item() == pytest.approx(4.0)
    # Group lasso over columns: norms 5, 0, 1.
    gl = ColumnGroupLasso(0.1).loss(model, zero, None, None)
    assert gl.item() == pytest.approx(0.6)
    gl.backward()
    # d||c||/dc = c / ||c|| (the zero column's gradient is taken as 0 by torch's norm).
    expect = 0.1 * torch.tensor([[0.6, 0.0, -1.0], [0.8, 0.0, 0.0]])
    assert torch.allclose(w.grad, expect)
    w.grad = None
    sgl = SparseGroupLasso(l1=0.5, gl=0.1).loss(model, zero, None, None)
    assert sgl.item() == pytest.approx(4.0 + 0.6)
    sgl.backward()
    sign = torch.tensor([[1.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    assert torch.allclose(w.grad, 0.5 * sign + expect)
    with pytest.raises(ConfigError, match="group-lasso"):
        ColumnGroupLasso(-1.0)


def test_pruning_masks_on_known_weights():
    model = _tiny_linear_model()
    # alpha * max|w| = 0.3 * 4 = 1.2: keep 3 and 4 only.
    m = threshold_masks(model, 0.3)["0"]
    assert m.tolist() == [[True, False, False], [True, False, False]]
    # beta * max column norm = 0.1 * 5: keeps columns 0 and 2 (norm 1).
    c = column_masks(model, 0.1)["0"]
    assert c.tolist() == [[True, False, True], [True, False, True]]
    assert column_masks(model, 0.5)["0"].tolist() == [[True, False, False]] * 2
    with pytest.raises(ConfigError, match="alpha"):
        threshold_masks(model, 1.5)


def test_training_reduces_loss():
    before = validation_loss(_fresh(), CFG, n_vectors=2000)
    model, res = train_detnet(CFG)
    after = validation_loss(model, CFG, n_vectors=2000)
    assert res.steps == 60
    assert after < 0.9 * before


def _fresh() -> DetNet:
    torch.manual_seed(CFG.seed)
    return DetNet(SHAPE)


def test_masks_hold_through_finetuning():
    model = _fresh()
    model, masks, res = prune_and_finetune(model, CFG, alpha=0.3, beta=0.2, steps=15, lr=1e-3)
    assert res.steps == 15
    pruned = 0
    for name, mod in model.named_modules():
        if name in masks:
            assert torch.all(mod.weight[~masks[name]] == 0.0)
            pruned += int((~masks[name]).sum())
    assert pruned > 0
    acc = detnet_account(model)
    assert acc["weights"] - acc["nonzero_weights"] >= pruned


def test_accounting_hand_checked():
    """N=6, K=2, L=1, hidden 2K=4, v 2K=4: fc 10->4, out_x 4->2, out_v 4->4."""
    shape = DetNetShape(n_rx=6, k_tx=2, n_layers=1, hidden_factor=2, v_factor=2)
    model = DetNet(shape)
    with torch.no_grad():
        model.layers[0].fc.weight[:, :5] = 0.0  # 20 of 40 zero
        model.layers[0].out_v.weight.zero_()  # 16 zero
    acc = detnet_account(model)
    assert acc["weights"] == 40 + 8 + 16
    assert acc["nonzero_weights"] == 20 + 8
    assert acc["memory_mb"] == pytest.approx(28 * 4 / 1e6)
    assert acc["dense_memory_mb"] == pytest.approx(64 * 4 / 1e6)
    fl = detnet_flops(model)
    assert fl == {
        "weights": 2 * 28,
        "hty": 2 * 11,
        "gram": 4 * 11,
        "hthx": 2 * 3,
        "soft_sign": 6 * 2,
        "mix": 3 * (2 + 4),
        "total": 56 + 22 + 44 + 6 + 12 + 18,
    }
    assert detnet_flops(model, with_gram=False)["gram"] == 0


def test_incremental_training_grows_and_stops():
    cfg = DetNetTrainConfig(detection=DET, shape=SHAPE, batch=64, seed=0)
    model, stages = incremental_train(cfg, max_layers=4, start_layers=2, steps_per_stage=10)
    assert [s.layers for s in stages][0] == 2
    assert 2 <= model.shape.n_layers <= 4 and len(model.layers) == model.shape.n_layers
    assert all(p.requires_grad for p in model.parameters())
    assert all(math.isfinite(s.val_loss) for s in stages)
    with pytest.raises(ConfigError, match="start_layers"):
        incremental_train(cfg, max_layers=4, start_layers=1)


def test_incremental_freezes_trained_layers():
    """A huge rel_tol stops after the second stage; layers 0-1 must equal the first stage's."""
    cfg = DetNetTrainConfig(detection=DET, shape=SHAPE, batch=64, seed=0)
    first, _ = incremental_train(cfg, max_layers=2, start_layers=2, steps_per_stage=5)
    grown, stages = incremental_train(
        cfg, max_layers=3, start_layers=2, steps_per_stage=5, rel_tol=-math.inf
    )
    assert [s.layers for s in stages] == [2, 3]
    for a, b in zip(first.layers.parameters(), grown.layers[:2].parameters(), strict=True):
        assert torch.equal(a, b)


def test_evaluate_same_vectors_for_all_detectors():
    model = _fresh()
    r = evaluate_detnet_ber(DET, {"detnet": model}, [5.0, 10.0], 300, seed=3, chunk=128)
    assert set(r["ber"]) == {"detnet", "mmse", "ml"}
    assert r["bits_simulated_per_snr"] == 1200
    # MMSE errors equal a direct computation on the same seeded stream.
    errs = 0
    rng = np.random.default_rng([3, 1])
    for b in (128, 128, 44):
        y, x, h, s2 = sample_numpy(DET, b, 10.0, rng)
        errs += int(np.sum(mmse(y, h, s2) != x))
    assert r["errors"]["mmse"][1] == errs
    assert r["ber"]["ml"][1] <= r["ber"]["mmse"][1]


def test_checkpoint_round_trip(tmp_path):
    model = _fresh()
    path = tmp_path / "detnet.pt"
    checkpoint.save(model, path, detnet_meta(CFG))
    loaded, meta = load_detnet(path)
    assert meta["train_config"]["detection"]["channel"] == "iid_gaussian"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
