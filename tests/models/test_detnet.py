"""DetNet: shapes, soft sign, mixing rule, loss formula, least squares."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.detector.detnet import (
    DetNet,
    DetNetShape,
    detnet_loss,
    gram,
    layer_loss_weights,
    least_squares,
    soft_sign,
)
from models.registry import build_model
from qphy.errors import ConfigError

TINY = DetNetShape(n_rx=6, k_tx=4, n_layers=3)


def _inputs(b: int = 5, shape: DetNetShape = TINY, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(b, shape.n_rx, shape.k_tx, generator=g)
    y = torch.randn(b, shape.n_rx, generator=g)
    return y, h


def test_shapes_and_layer_sizes():
    torch.manual_seed(0)
    model = DetNet(TINY)
    k = TINY.k_tx
    layer = model.layers[0]
    assert (layer.fc.in_features, layer.fc.out_features) == (5 * k, 8 * k)
    assert (layer.out_x.in_features, layer.out_x.out_features) == (8 * k, k)
    assert (layer.out_v.in_features, layer.out_v.out_features) == (8 * k, 2 * k)
    assert sum(p.numel() for p in model.parameters()) == TINY.n_params()
    y, h = _inputs()
    out = model(y, h)
    assert out.shape == (3, 5, k)
    # The trainer's single-argument form and a channel shared by the batch.
    assert torch.equal(model((y, h)), out)
    shared = model(y, h[0])
    assert torch.allclose(shared, model(y, h[0].expand(5, -1, -1)), atol=1e-6)
    model.active_layers = 2
    assert torch.equal(model(y, h), out[:2])


def test_default_is_paper_size_and_registered():
    model = build_model("detnet")
    assert isinstance(model, DetNet)
    assert (model.shape.n_rx, model.shape.k_tx, model.shape.n_layers) == (30, 20, 10)
    assert model.layers[0].fc.in_features == 100 and model.layers[0].fc.out_features == 160


def test_bad_inputs_raise():
    model = DetNet(TINY)
    y, h = _inputs()
    with pytest.raises(ConfigError, match="needs the channel"):
        model(y)
    with pytest.raises(ConfigError, match="H must have shape"):
        model(y, h[:, :5])
    with pytest.raises(ConfigError, match="positive integer"):
        DetNetShape(n_layers=0)


def test_soft_sign_known_points():
    x = torch.tensor([-2.0, -0.5, -0.25, 0.0, 0.1, 0.5, 3.0])
    got = soft_sign(x, torch.tensor(0.5))
    assert torch.allclose(got, torch.tensor([-1.0, -1.0, -0.5, 0.0, 0.2, 1.0, 1.0]))
    # A wider threshold: linear with slope 1/t in between.
    assert torch.allclose(soft_sign(torch.tensor([1.0]), 2.0), torch.tensor([0.5]))


def test_mixing_rule():
    """With zero weights the new estimate is psi(b2) and v_new = b3: x_l = 0.1 new + 0.9 old."""
    model = DetNet(TINY)
    with torch.no_grad():
        for layer in model.layers:
            for p in layer.parameters():
                p.zero_()
            layer.t.fill_(0.5)
            layer.out_x.bias.fill_(10.0)  # psi -> +1
    y, h = _inputs(b=2)
    out = model(y, h)
    expect = [0.1, 0.1 + 0.9 * 0.1, 0.1 + 0.9 * 0.19]
    for li, e in enumerate(expect):
        assert torch.allclose(out[li], torch.full((2, 4), e)), li


def test_loss_hand_example():
    x = torch.tensor([[1.0, -1.0]])
    x_ls = torch.tensor([[0.0, -1.0]])  # ||x - x_LS||^2 = 1
    outs = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[1.0, -0.5]]])  # errors 2, 1, 0.25
    expect = math.log(1) * 2 + math.log(2) * 1 + math.log(3) * 0.25
    assert detnet_loss(outs, x, x_ls).item() == pytest.approx(expect, rel=1e-6)
    # Batch average of the per-vector ratios.
    x2 = torch.cat([x, x])
    ls2 = torch.cat([x_ls, torch.tensor([[1.0, 1.0]])])  # second ratio denominator 4
    outs2 = torch.cat([outs, outs], dim=1)
    assert detnet_loss(outs2, x2, ls2).item() == pytest.approx(expect * (1 + 0.25) / 2, rel=1e-6)
    assert layer_loss_weights(3).tolist() == pytest.approx([0.0, math.log(2), math.log(3)])


def test_least_squares_and_gram_match_numpy():
    y, h = _inputs(b=3)
    ls = least_squares(y, h).numpy()
    ref = np.einsum("bkn,bn->bk", np.linalg.pinv(h.numpy()), y.numpy())
    np.testing.assert_allclose(ls, ref, rtol=1e-4, atol=1e-4)
    shared = least_squares(y, h[0]).numpy()
    np.testing.assert_allclose(shared, y.numpy() @ np.linalg.pinv(h[0].numpy()).T, atol=1e-4)
    hty, hth = gram(y, h)
    assert hty.shape == (3, 4) and hth.shape == (3, 4, 4)
