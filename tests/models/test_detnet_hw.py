"""The fixed-channel DetNet's MLP form (models/detector/detnet_hw.py): exact re-expression,
equalisation and the detector target's --arch detnet config (its RTL build:
tests/flow/test_detnet_build.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.detector.config import QuantConfig
from models.detector.detnet import DetNet, DetNetShape
from models.detector.detnet_hw import MLP, equalize, to_mlp
from qphy.errors import ConfigError
from qphy.variants import parse_bits


def _detnet(layers: int, seed: int = 0, negative_t: bool = False) -> DetNet:
    torch.manual_seed(seed)
    model = DetNet(DetNetShape(n_rx=6, k_tx=4, n_layers=layers)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        if negative_t:
            model.layers[0].t.fill_(-0.4)  # psi with a negative threshold is odd, but exact
    return model


@pytest.mark.parametrize(("layers", "negative_t"), [(1, False), (2, True), (4, False)])
def test_mlp_form_equals_detnet_on_a_fixed_channel(layers, negative_t):
    model = _detnet(layers, negative_t=negative_t)
    h = np.random.default_rng(3).normal(size=(6, 4))
    mlp = to_mlp(model, h)
    k, hd, v = 4, 32, 8
    # A_1: y -> [z, q+-]; B_1: -> [q+-, r1, r2, v+-]; then A_l: -> [z, q+-, x+-, v+-] and
    # B_l: -> [q+-, xp+-, r1, r2, v+-]; the output layer gives x_L.
    want = [(6, hd + 2 * k), (hd + 2 * k, 4 * k + 2 * v)]
    s_prev = 4 * k + 2 * v
    for _ in range(layers - 1):
        want += [(s_prev, hd + 4 * k + 2 * v), (hd + 4 * k + 2 * v, 6 * k + 2 * v)]
        s_prev = 6 * k + 2 * v
    assert mlp.sizes == [*want, (s_prev, k)]
    y = torch.randn(200, 6, dtype=torch.float64) * 2.0
    ref = model(y, torch.from_numpy(h))[-1]
    out = mlp.double()(y)
    # The MLP's weights are float32: agreement to float32 rounding, not a loose tolerance.
    assert torch.max(torch.abs(ref - out)) < 1e-5
    # A wrong channel gives another function: the test can fail.
    other = to_mlp(model, h * 1.1).double()(y)
    assert torch.max(torch.abs(ref - other)) > 1e-2


def test_equalize_keeps_the_function_and_balances_the_ranges():
    model = _detnet(3)
    h = np.random.default_rng(4).normal(size=(6, 4))
    mlp = to_mlp(model, h).double()
    y = torch.randn(2000, 6, dtype=torch.float64)
    before = mlp(y)
    factors = equalize(mlp, y, percentile=99.0)
    assert len(factors) == len(mlp.linears()) - 1
    assert torch.max(torch.abs(mlp(y) - before)) < 1e-5
    act = y
    for lin in mlp.linears()[:-1]:
        act = torch.relu(lin(act))
        hi = torch.quantile(act, 0.99, dim=0)
        live = hi > 1e-6
        assert live.any()
        assert torch.allclose(hi[live], torch.ones_like(hi[live]), atol=1e-6)


def test_mlp_form_rejects_a_channel_of_the_wrong_shape():
    with pytest.raises(ConfigError, match=r"needs a channel of shape \(6, 4\)"):
        to_mlp(_detnet(1), np.zeros((4, 6)))


def test_detnet_config_names_and_checks():
    cfg = QuantConfig(bits=parse_bits("w4a4"), arch="detnet", layers=10)
    assert cfg.name == "detnet_l10_w4a4_fixed"
    assert QuantConfig(arch="detnet", layers=3).name == "detnet_l3_float_fixed"
    assert QuantConfig(bits=parse_bits("w4a4")).name == "fullycon_w4a4_fixed"
    # The varying channel has its own hardware form (models/detector/detnet_iid_hw.py).
    assert QuantConfig(arch="detnet", channel="iid", layers=2).name == "detnet_l2_float_iid"
    with pytest.raises(ConfigError, match="layers must be a positive integer"):
        QuantConfig(arch="detnet", layers=0)
    with pytest.raises(ConfigError, match="arch must be one of"):
        QuantConfig(arch="detnot")


def test_mlp_is_plain_linear_relu_chain():
    mlp = MLP([(3, 5), (5, 2)])
    kinds = [type(m).__name__ for m in mlp.net]
    assert kinds == ["Linear", "ReLU", "Linear"]


def test_detector_target_defaults_per_channel():
    from qphy import targets

    det = targets.get("detector")
    w4a4 = parse_bits("w4a4")
    fixed = det.config(w4a4, arch="detnet")
    iid = det.config(w4a4, arch="detnet", channel="iid")
    assert (fixed.float_steps, fixed.qat_steps, fixed.batch_size) == (6000, 3000, 500)
    # The varying channel's measured recipe; what the user gives still wins.
    assert (iid.float_steps, iid.qat_steps, iid.batch_size) == (9000, 800, 500)
    assert (iid.detnet_mix, fixed.detnet_mix) == (0.25, 0.1)
    assert det.config(w4a4, arch="detnet", channel="iid", qat_steps=40).qat_steps == 40
    assert det.config(w4a4, arch="detnet", channel="iid", detnet_mix=0.5).detnet_mix == 0.5
    assert det.config(w4a4).qat_steps == QuantConfig().qat_steps  # FullyCon untouched
    with pytest.raises(ConfigError, match="--mix: for --arch detnet only"):
        det.config(w4a4, detnet_mix=0.25)
    for bad in (0.0, 1.5, "0.25", True, float("nan")):
        with pytest.raises(ConfigError, match="detnet_mix must lie in"):
            QuantConfig(arch="detnet", detnet_mix=bad)
