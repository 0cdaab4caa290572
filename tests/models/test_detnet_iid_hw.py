"""The varying-channel DetNet's hardware form (models/detector/detnet_iid_hw.py): host inputs,
the float initialisation, QAT through the one trainer, and the integer-exact QONNX export."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.detector.config import QuantConfig
from models.detector.data import detection_config
from models.detector.detnet import DetNet, DetNetShape, gram
from models.detector.detnet_iid import _FloatDetector, golden_inputs, train_qat
from models.detector.detnet_iid_hw import GRAM_SCALE, QuantDetNetIID, from_float, host_inputs
from models.detector.mimo import sample_numpy
from qphy.errors import BitMismatchError, CheckpointError, ConfigError
from qphy.variants import parse_bits
from quant.export import QuantizerTrace, compare_traces_dag, export_verified
from quant.recipes import Recipe

SHAPE = DetNetShape(n_layers=2)


def _batch(n: int, seed: int = 0):
    cfg = QuantConfig(arch="detnet", channel="iid", layers=2)
    return sample_numpy(detection_config(cfg), n, 10.0, np.random.default_rng(seed))


def test_host_inputs_are_hty_and_the_scaled_flattened_gram():
    b = _batch(5)
    u = host_inputs(b.y, b.H)
    hty, hth = gram(torch.from_numpy(b.y), torch.from_numpy(b.H))
    assert u.shape == (5, 20 + 400) and u.dtype == np.float32
    np.testing.assert_allclose(u[:, :20], hty.numpy(), rtol=1e-5, atol=1e-6)
    g = u[:, 20:].reshape(5, 20, 20)
    np.testing.assert_allclose(g, GRAM_SCALE * hth.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="do not fit"):
        host_inputs(b.y, b.H[:, :29])


def _unquantized(model: QuantDetNetIID, u: torch.Tensor) -> torch.Tensor:
    """The hardware form's structure in float (its layers' float weights, no quantizers)."""
    from torch.nn.functional import linear

    k = model.shape.k_tx
    q, g = u[:, :k], u[:, k:].reshape(-1, k, k) / GRAM_SCALE
    x = xp = v = None
    for lay in model.layers:
        c = q if lay.first else torch.cat([q, x, (g @ x.unsqueeze(-1)).squeeze(-1), v], 1)
        z = torch.relu(linear(c, lay.fc.weight, lay.fc.bias))
        # pos's saturation at 1 is the soft sign's clamp
        r = linear(z, lay.fc_r.weight, lay.fc_r.bias).clamp(0.0, 1.0)
        m = r if lay.first else torch.cat([r, xp], 1)
        x_new = linear(m, lay.mix_x.weight, lay.mix_x.bias)
        if not lay.last:
            xp = torch.relu(linear(m, lay.mix_p.weight, lay.mix_p.bias))
            vn = linear(z, lay.fc_v.weight, lay.fc_v.bias)
            v = vn if lay.first else linear(torch.cat([vn, v], 1), lay.mix_v.weight, lay.mix_v.bias)
        x = x_new
    return x


def test_from_float_is_detnet_exactly_before_quantization():
    """The soft sign as a clamp, the skip paths and the 0.1/0.9 mix as linear layers over
    concats: initialised from a float DetNet, the structure computes DetNet's function (a
    negative threshold included)."""
    torch.manual_seed(0)
    det = DetNet(SHAPE).eval()
    for layer, t in zip(det.layers, (0.3, -0.4), strict=True):  # trained-like thresholds
        layer.t.data.fill_(t)
    model = QuantDetNetIID(Recipe(parse_bits("w8a8")), SHAPE).eval()
    from_float(model, det)
    b = _batch(200)
    u = torch.from_numpy(host_inputs(b.y, b.H))
    with torch.no_grad():
        ref = det(torch.from_numpy(b.y).float(), torch.from_numpy(b.H).float())[-1]
        torch.testing.assert_close(_FloatDetector(det)(u), ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(_unquantized(model, u), ref, rtol=1e-4, atol=1e-5)
        got = model(u)  # quantized: close, not equal
    assert float((ref - got).abs().mean()) < 0.05
    with pytest.raises(CheckpointError, match="does not fit"):
        from_float(model, DetNet(DetNetShape(n_layers=3)))


def test_qat_through_the_trainer_and_export_is_integer_exact(tmp_path):
    cfg = QuantConfig(
        bits=parse_bits("w4a4"),
        arch="detnet",
        channel="iid",
        layers=2,
        qat_steps=30,
        batch_size=64,
    )
    torch.manual_seed(1)
    float_model = DetNet(SHAPE).eval()
    start = QuantDetNetIID(Recipe(cfg.bits), SHAPE)
    from_float(start, float_model)
    model, loss = train_qat(cfg, float_model)
    assert np.isfinite(loss)
    # The mixes are frozen at DetNet's 0.1/0.9 with the bias fitted to the quantized weights;
    # everything else trains.
    for layer, first in zip(model.layers, start.layers, strict=True):
        assert torch.equal(layer.mix_x.weight, first.mix_x.weight)
        assert not layer.mix_x.weight.requires_grad
        wq = torch.diagonal(layer.mix_x.quant_weight().value[:, : SHAPE.k_tx])
        w = torch.diagonal(layer.mix_x.weight[:, : SHAPE.k_tx])
        assert torch.allclose(layer.mix_x.bias, -SHAPE.mix * wq / w)
        assert not torch.equal(layer.fc.weight, first.fc.weight)
    x = golden_inputs(cfg, model, 24)
    report = export_verified(model, x, tmp_path / "exp", {"variant": cfg.name})
    assert report["qonnx_matches_torch"] and report["vectors_checked"] == 24
    # input, q; layer 1: ReLU, r, x_1, v_1, pair; layer 2: gx, ReLU, r, x_2 (output)
    assert len(report["activation_quantizers_checked"]) == 11
    assert report["weight_quantizers_checked"] == 8
    assert report["saturating_vectors"] == 12
    saved = json.loads((tmp_path / "exp" / "export_report.json").read_text())
    assert saved["variant"] == cfg.name


def test_dag_comparison_pairs_by_value_and_names_a_mismatch():
    a = QuantizerTrace("a", np.arange(6).reshape(2, 3), np.ones(1))
    b = QuantizerTrace("b", np.arange(6).reshape(2, 3) + 1, np.ones(1))
    compare_traces_dag([a, b], [b, a])  # any order of the graph's Quant nodes
    bad = replace(b, ints=b.ints.copy())
    bad.ints[1, 2] += 1
    with pytest.raises(BitMismatchError):
        compare_traces_dag([a, b], [bad, a])


def test_ber_uses_the_family_loop_with_host_inputs():
    """evaluate_detector's BER is the family's loop (models.detector.evaluate) fed the host
    inputs: the same errors as a plain loop over the same seeded vectors."""
    from models.detector.detnet_iid import model_inputs
    from models.detector.evaluate import BASELINES, evaluate_ber
    from quant.export import hard_decisions

    cfg = QuantConfig(
        arch="detnet", channel="iid", layers=2, eval_snr_db=(6.0, 12.0), eval_bits_per_snr=400
    )
    torch.manual_seed(0)
    float_model = _FloatDetector(DetNet(SHAPE)).eval()
    res = evaluate_ber(cfg, {"float": float_model}, 7, ("zf", "mmse"), inputs=model_inputs)
    det = detection_config(cfg)
    want = {"float": [], "zf": [], "mmse": []}
    for si, snr in enumerate(cfg.eval_snr_db):
        b = sample_numpy(det, 20, snr, np.random.default_rng([7, si]))
        with torch.no_grad():
            xh = hard_decisions(float_model(torch.from_numpy(host_inputs(b.y, b.H))).numpy())
        want["float"].append(int(np.sum(xh != b.x)))
        for name in ("zf", "mmse"):
            want[name].append(int(np.sum(BASELINES[name](b.y, b.H, b.sigma2) != b.x)))
    assert res["errors"] == want and res["bits_simulated_per_snr"] == 400
    assert sum(want["float"]) > 0  # an untrained DetNet errs: the comparison is not vacuous
