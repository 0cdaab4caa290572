"""Green DetNet on the i.i.d. channel (models/detector/green_iid.py): the hidden-unit lasso,
pruning that physically removes units (float structure and integer model unchanged), the
truncation of R-I-DetNet, and an exported pruned model with smaller MVAUs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn.functional import linear

from models.detector import green_iid
from models.detector.config import QuantConfig
from models.detector.data import detection_config
from models.detector.detnet import DetNet, DetNetShape
from models.detector.detnet_iid import golden_inputs
from models.detector.detnet_iid_hw import QuantDetNetIID, host_inputs
from models.detector.mimo import sample_numpy
from qphy.errors import ConfigError
from qphy.variants import parse_bits
from quant.recipes import Recipe

SHAPE = DetNetShape(n_layers=3)


def _u(n: int, seed: int = 0) -> torch.Tensor:
    cfg = QuantConfig(arch="detnet", channel="iid", layers=3)
    b = sample_numpy(detection_config(cfg), n, 10.0, np.random.default_rng(seed))
    return torch.from_numpy(host_inputs(b.y, b.H))


def _det(seed: int = 0) -> DetNet:
    torch.manual_seed(seed)
    det = DetNet(SHAPE).eval()
    for layer in det.layers:
        layer.t.data.fill_(0.3)
    return det


def _keep(det, seed: int = 3) -> list[torch.Tensor]:
    """Random masks of different sizes per layer (a multiple of 4 kept)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n_keep in (40, 100, 12):
        m = torch.zeros(SHAPE.hidden, dtype=torch.bool)
        m[torch.randperm(SHAPE.hidden, generator=g)[:n_keep]] = True
        out.append(m)
    return out


def _float_structure(model: QuantDetNetIID, u: torch.Tensor) -> torch.Tensor:
    """The hardware form's function with its float weights and no quantizers."""
    k = model.shape.k_tx
    q, g = u[:, :k], u[:, k:].reshape(-1, k, k)
    x = xp = v = None
    for lay in model.layers:
        c = q if lay.first else torch.cat([q, x, (g @ x.unsqueeze(-1)).squeeze(-1), v], 1)
        z = torch.relu(linear(c, lay.fc.weight, lay.fc.bias))
        r = torch.relu(linear(z, lay.fc_r.weight, lay.fc_r.bias))
        m = r if lay.first else torch.cat([r, xp], 1)
        x_new = linear(m, lay.mix_x.weight, lay.mix_x.bias)
        if not lay.last:
            xp = torch.relu(linear(m, lay.mix_p.weight, lay.mix_p.bias))
            vn = linear(z, lay.fc_v.weight, lay.fc_v.bias)
            v = vn if lay.first else linear(torch.cat([vn, v], 1), lay.mix_v.weight, lay.mix_v.bias)
        x = x_new
    return x


def test_lasso_is_the_group_norms_and_masks_keep_the_strong_units():
    det = _det()
    keep = _keep(det)
    green_iid.zero_units(det, keep)
    norms = green_iid.unit_norms(det)
    assert all(float(n[~m].max()) < 1e-5 for n, m in zip(norms, keep, strict=True))
    gl = green_iid.HiddenUnitLasso(0.5)
    base = torch.tensor(1.0)
    expect = 1.0 + 0.5 * sum(float(n.sum()) for n in norms)
    assert float(gl.loss(det, base, None, None)) == pytest.approx(expect, rel=1e-5)
    sgl = green_iid.HiddenUnitLasso(0.0, 0.1)
    l1 = sum(
        float(m.weight.abs().sum()) for lay in det.layers for m in (lay.fc, lay.out_x, lay.out_v)
    )
    assert float(sgl.loss(det, base, None, None)) == pytest.approx(1.0 + 0.1 * l1, rel=1e-5)
    # the proximal form: a weak group goes exactly to zero, a strong one shrinks by the step
    prox = green_iid.HiddenUnitLasso(1.0, prox_lr=0.5)
    assert prox.loss(det, base, None, None) is base
    before = green_iid.unit_norms(det)[1].detach().clone()
    prox.after_step(det, 0)
    after = green_iid.unit_norms(det)[1].detach()
    weak = before <= 0.5
    assert bool(weak.any()) and bool((~weak).any())
    assert float(after[weak].max()) < 1e-5
    torch.testing.assert_close(after[~weak], before[~weak] - 0.5, rtol=1e-4, atol=1e-5)
    # v's groups: a zeroed entry has norm 0 everywhere, the penalty counts v's groups too
    det = _det()
    v_keep = torch.arange(SHAPE.v_dim) < 10
    green_iid.zero_units(det, keep, v_keep)
    vn = green_iid.v_norms(det).detach()
    assert float(vn[~v_keep].max()) < 1e-5 and float(vn[v_keep].min()) > 0.1
    assert green_iid.v_mask(det, 0.01, multiple_of=4).tolist() == (torch.arange(40) < 12).tolist()
    glv = green_iid.HiddenUnitLasso(0.5, v_groups=True)
    expect = 1.0 + 0.5 * (sum(float(n.sum()) for n in green_iid.unit_norms(det)) + float(vn.sum()))
    assert float(glv.loss(det, base, None, None)) == pytest.approx(expect, rel=1e-5)
    masks = green_iid.unit_masks(det, 0.01, multiple_of=8)
    # every zeroed unit goes, the kept counts round up to multiples of 8 by the next strongest
    assert [int(m.sum()) for m in masks] == [40, 104, 16]
    assert all(bool(m[k].all()) for m, k in zip(masks, keep, strict=True))
    with pytest.raises(ConfigError, match="beta"):
        green_iid.unit_masks(det, 1.0)
    with pytest.raises(ConfigError, match="must be finite"):
        green_iid.HiddenUnitLasso(-1.0)


def test_pruned_model_is_physically_smaller_and_computes_the_zeroed_function():
    det = _det()
    keep = _keep(det)
    recipe = Recipe(parse_bits("w4a4"))
    dense = QuantDetNetIID(recipe, SHAPE).eval()
    from models.detector.detnet_iid_hw import from_float

    from_float(dense, det)
    # a few QAT steps with the units held at zero: the quantizers' scales are then collected
    cfg = QuantConfig(bits=parse_bits("w4a4"), arch="detnet", channel="iid", batch_size=32)
    v_keep = torch.arange(SHAPE.v_dim) % 3 == 1  # 13 of 40 entries of v stay
    zero = green_iid.ZeroUnits(keep, v_keep)
    green_iid.qat(dense, cfg, 3, 1e-4, seed=0, callbacks=(zero,))
    for lay, m in zip(dense.layers, keep, strict=True):
        assert float(lay.fc.weight[~m].abs().max()) == 0
    assert float(dense.layers[1].mix_v.weight[~v_keep].abs().max()) == 0
    small = green_iid.shrink(dense, keep, v_keep)
    assert small.hidden == (40, 100, 12) and small.v_dim == 13
    assert [lay.fc.out_features for lay in small.layers] == [40, 100, 12]
    assert [lay.fc.in_features for lay in small.layers] == [20, 73, 73]
    assert [lay.fc_r.in_features for lay in small.layers] == [40, 100, 12]
    assert [(lay.fc_v.in_features, lay.fc_v.out_features) for lay in small.layers[:-1]] == [
        (40, 13),
        (100, 13),
    ]
    assert tuple(small.layers[1].mix_v.weight.shape) == (13, 26)
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < 0.5 * sum(p.numel() for p in dense.parameters())
    u = _u(300)
    with torch.no_grad():
        torch.testing.assert_close(_float_structure(small, u), _float_structure(dense, u))
        # the integer model: equal bit for bit
        assert torch.equal(small(u), dense(u))
        # the float DetNet with the units zeroed, carried over, is that function too
        green_iid.zero_units(det, keep, v_keep)
        via = green_iid.to_quant(det, recipe, keep, v_keep)
        ref = QuantDetNetIID(recipe, SHAPE).eval()
        from_float(ref, det)
        assert torch.equal(via(u), ref(u))
    with pytest.raises(ConfigError, match="at least one must stay"):
        green_iid.shrink(dense, [torch.zeros(SHAPE.hidden, dtype=torch.bool)] + keep[1:])
    with pytest.raises(ConfigError, match="hidden widths"):
        QuantDetNetIID(recipe, SHAPE, hidden=(8, 8))


def test_qat_with_frozen_mixes_trains_everything_else():
    recipe = Recipe(parse_bits("w4a4"))
    model = green_iid.to_quant(_det(), recipe)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    cfg = QuantConfig(bits=parse_bits("w4a4"), arch="detnet", channel="iid", batch_size=32)
    green_iid.qat(model, cfg, 3, 1e-3, seed=0, freeze_mix=True)
    after = model.state_dict()
    mix = [k for k in before if k.split(".")[2:3] in (["mix_x"], ["mix_p"], ["mix_v"])]
    mix = [k for k in mix if k.endswith((".weight", ".bias"))]
    # layers 1..3: mix_x + mix_p, mix_x + mix_p + mix_v, mix_x: weight and bias each
    assert len(mix) == 2 * (2 + 3 + 1)
    assert all(torch.equal(after[k], before[k]) for k in mix)
    trained = [k for k in before if k.endswith(("fc.weight", "fc_r.weight", "fc_v.bias"))]
    assert trained and all(not torch.equal(after[k], before[k]) for k in trained)
    assert all(
        p.requires_grad == (n.split(".")[2] not in green_iid.MIX_LAYERS)
        for n, p in model.named_parameters()
        if n.startswith("layers.")
    )
    with pytest.raises(ConfigError, match="needs a QuantDetNetIID"):
        green_iid.freeze_mixes(_det())


def test_symmetric_mix_bias_fits_the_quantized_mix_and_remix_makes_it_exact():
    recipe = Recipe(parse_bits("w4a4"))
    model = green_iid.to_quant(_det(), recipe)  # t = 0.3 > 0: mix_x's r column is 2 * 0.1
    assert all(float(lay.mix_x.bias[0]) == pytest.approx(-0.1) for lay in model.layers)
    biases = green_iid.symmetric_mix_bias(model, 0.1)
    k = SHAPE.k_tx
    for lay, b in zip(model.layers, biases, strict=True):
        wq = torch.diagonal(lay.mix_x.quant_weight().value[:, :k]).detach()
        # x_l = w_q r + b with r = (psi + 1) / 2: symmetric in psi when b = -w_q / 2
        torch.testing.assert_close(lay.mix_x.bias.detach(), -wq / 2)
        assert b == pytest.approx(float(-wq[0] / 2))
        if hasattr(lay, "mix_p"):
            torch.testing.assert_close(lay.mix_p.bias.detach(), torch.cat([-wq / 2, wq / 2]))
    assert biases[1:] == [-0.125, -0.125]  # 0.2 became 0.25 in 4 bits
    # mix 1/4: the later layers' 2 mix = 0.5 and 1 - mix = 0.75 are exact, their bias stays
    # -mix (layer 1's lone 0.5 per row is clipped to 7/16 by its own power-of-two scale)
    det = green_iid.remix(_det(), 0.25)
    assert det.shape.mix == 0.25
    assert torch.equal(det.layers[1].fc.weight, _det().layers[1].fc.weight)
    exact = green_iid.to_quant(det, recipe)
    assert green_iid.symmetric_mix_bias(exact, 0.25) == [-0.25 * 0.4375 / 0.5, -0.25, -0.25]
    with pytest.raises(ConfigError, match="mix"):
        green_iid.remix(_det(), 1.5)
    with pytest.raises(ConfigError, match="needs a QuantDetNetIID"):
        green_iid.symmetric_mix_bias(_det(), 0.1)


def test_finetune_distills_from_the_teacher():
    from models.detector.detnet_train import DetNetTrainConfig

    cfg = DetNetTrainConfig(shape=DetNetShape(n_layers=2), batch=16, lr=1e-3)
    student = green_iid.truncate(_det(), 2)

    def first_loss(**kw) -> float:
        return green_iid.finetune(copy.deepcopy(student), cfg, 1, seed=5, **kw).last_loss

    plain = first_loss()
    # a teacher computing the student's own last estimate adds nothing, another one adds
    same = DetNet(cfg.shape)
    same.load_state_dict(student.state_dict())
    assert first_loss(teacher=same, kd=5.0) == pytest.approx(plain, rel=1e-6)
    assert first_loss(teacher=_det(seed=1), kd=5.0) > plain
    with pytest.raises(ConfigError, match="needs a teacher"):
        first_loss(kd=1.0)
    with pytest.raises(ConfigError, match="kd must be finite"):
        first_loss(teacher=same, kd=-1.0)


def test_truncated_detnet_is_the_first_layers():
    det = _det()
    small = green_iid.truncate(det, 2)
    assert small.shape.n_layers == 2 and len(small.layers) == 2
    y = torch.randn(50, 30)
    h = torch.randn(50, 30, 20) / 30**0.5
    with torch.no_grad():
        assert torch.equal(small(y, h), det(y, h)[:2])
    with pytest.raises(ConfigError, match="cannot keep"):
        green_iid.truncate(det, 4)


def test_exported_pruned_model_has_the_smaller_mvaus(tmp_path):
    from hw.config import HwBuildConfig, Preset
    from hw.runner import run_build
    from qphy.reference import MODEL_FILE
    from quant.export import export_verified

    det = green_iid.truncate(_det(), 2)
    keep = [torch.arange(SHAPE.hidden) < 24, torch.arange(SHAPE.hidden) % 5 == 0]
    v_keep = torch.arange(SHAPE.v_dim) >= 32
    green_iid.zero_units(det, keep, v_keep)
    cfg = QuantConfig(bits=parse_bits("w4a4"), arch="detnet", channel="iid", layers=2)
    model = green_iid.to_quant(det, Recipe(cfg.bits), keep, v_keep)
    report = export_verified(model, golden_inputs(cfg, model, 16), tmp_path / "exp", {})
    assert report["qonnx_matches_torch"]
    res = run_build(
        tmp_path / "exp" / MODEL_FILE, HwBuildConfig(preset=Preset.CHECK), tmp_path / "hw"
    )
    shapes = sorted(
        (int(_attr(n, "MW")), int(_attr(n, "MH")))
        for n in res.model.graph.node
        if n.op_type.startswith("MVAU")
    )
    # layer 1: fc 20 -> 24, fc_r 24 -> K, fc_v 24 -> 8; layer 2: fc 3K + 8 -> 32, fc_r 32 -> K
    assert (20, 24) in shapes and (24, 20) in shapes and (24, 8) in shapes
    assert (68, 32) in shapes and (32, 20) in shapes
    assert not any(160 in s or 100 in s for s in shapes)


def _attr(node, name: str):
    from onnx import helper

    return next(helper.get_attribute_value(a) for a in node.attribute if a.name == name)
