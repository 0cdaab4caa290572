"""Quantized CSI encoders: construction, exact export, masks, BN folding, training jobs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantLinear
from torch import nn

from models.csi import jobs as csi
from models.csi.csinet import LEAKY_SLOPE, Fire, conv_bn
from models.csi.qat import QuantAutoencoder, _fold_bn
from models.registry import build_model
from qphy.errors import CheckpointError, ConfigError, UnsupportedLayerError
from qphy.variants import parse_bits
from quant.export import export_verified


def _calibrated(arch: str, bits: str = "w4a4", codeword_bits: int = 6, **kw) -> QuantAutoencoder:
    torch.manual_seed(0)
    model = build_model(arch, cr=32, n_refine=0, **kw).eval()
    q = QuantAutoencoder(model, parse_bits(bits), codeword_bits)
    q.train()
    with torch.no_grad():
        for _ in range(3):
            q(torch.rand(32, 2, 32, 32))
    return q.eval()


def _centred(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 2, 32, 32)) - 0.5).astype(np.float32)


@pytest.mark.parametrize(
    ("arch", "kw"),
    [("csinetplus", {}), ("convcsinet", {"width": 4}), ("convsqucsinet", {"width": 4})],
)
def test_quant_encoder_exports_integer_exact(arch, kw, tmp_path):
    q = _calibrated(arch, **kw)
    n_layers = sum(isinstance(m, QuantConv2d | QuantLinear) for m in q.encoder.modules())
    rep = export_verified(q.encoder, _centred(24), tmp_path / "e", {"variant": arch}, False)
    assert rep["vectors_checked"] == 24
    assert rep["weight_quantizers_checked"] == n_layers > 0
    # the input quantizer, one per activation and the codeword quantizer
    assert len(rep["activation_quantizers_checked"]) >= 3
    out = np.load(tmp_path / "e" / "golden_out.npy")
    assert out.shape == (24, 64)
    scale = rep["output_scale"]
    ints = out / scale
    assert np.array_equal(ints, np.round(ints))
    assert np.abs(ints).max() <= 2 ** (6 - 1)  # codeword_bits = 6


def test_codeword_quantizer_width_is_a_parameter():
    x = torch.from_numpy(_centred(64))
    for cw in (3, 8):
        q = _calibrated("convcsinet", codeword_bits=cw, width=4)
        scale = q.encoder.blocks[-2].quant.act_quant.scale().item()
        levels = torch.unique(torch.round(q.encoder(x) / scale))
        assert len(levels) <= 2**cw and levels.abs().max() <= 2 ** (cw - 1)


def test_bn_folding_equals_conv_then_batchnorm():
    torch.manual_seed(1)
    block = conv_bn(3, 5, 3, act=False)
    bn = block[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    block.eval()
    w, b = _fold_bn(block[0].weight, bn)
    x = torch.randn(2, 3, 8, 8)
    folded = nn.functional.conv2d(x, w, b, padding=1)
    assert torch.allclose(folded, block(x), atol=1e-5)


def test_leaky_slope_is_a_power_of_two():
    assert np.log2(LEAKY_SLOPE) == round(np.log2(LEAKY_SLOPE))


def test_fire_mask_survives_training_steps():
    q = _calibrated("convsqucsinet", width=4)
    q.train()
    opt = torch.optim.SGD(q.parameters(), lr=0.5)
    for _ in range(2):
        x = torch.rand(8, 2, 32, 32)
        loss = torch.mean((q(x) - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        q.encoder.apply_masks()
    masked = [b for b in q.encoder.conv_blocks() if b.mask.numel()]
    assert masked, "the fire expands have masks"
    for b in masked:
        w = b.conv.weight.detach()
        assert torch.all(w[b.mask == 0] == 0)
        assert torch.any(w[b.mask == 1] != 0)


def test_merged_fire_quant_block_matches_the_fire_module_at_high_precision():
    torch.manual_seed(2)
    fire = Fire(4, 2, 8).eval()
    float_model = build_model("convsqucsinet", cr=32, width=4, n_refine=0).eval()
    float_model.encoder[2] = fire  # a fire with known weights in the chain
    q = QuantAutoencoder(float_model, parse_bits("w8a8"), 8)
    squeeze, expand = q.encoder.blocks[1], q.encoder.blocks[2]
    assert expand.mask.numel() and squeeze.act is not None
    s = torch.randn(1, 2, 6, 6)
    merged_w = expand.conv.weight.detach()  # float latent weights, mask applied
    ref = torch.cat([fire.expand1(s), fire.expand3(s)], dim=1)
    got = nn.functional.conv2d(s, merged_w, None, padding=1)
    inv = fire.bn.weight / torch.sqrt(fire.bn.running_var + fire.bn.eps)
    assert torch.allclose(got, ref * inv.reshape(1, -1, 1, 1), atol=1e-5)


def test_avgpool_variant_is_refused():
    model = build_model("convcsinet", cr=32, width=4, n_refine=0, downsample="avgpool").eval()
    with pytest.raises(UnsupportedLayerError, match="strided"):
        QuantAutoencoder(model, parse_bits("w4a4"), 8)


@pytest.mark.parametrize(
    "kw",
    [{"arch": "csinet"}, {"cr": 5}, {"scenario": "space"}, {"codeword_bits": 1}, {"batch_size": 0}],
)
def test_bad_csi_config_is_config_error(kw):
    with pytest.raises(ConfigError):
        csi.CsiConfig(**kw)


def test_variant_names():
    cfg = csi.CsiConfig(arch="convcsinet", cr=16, scenario="outdoor", bits="w5a6", codeword_bits=4)
    assert cfg.name == "convcsinet_cr16_w5a6c4_outdoor"
    assert cfg.float_name == "convcsinet_cr16_float_outdoor"


@pytest.mark.slow
def test_train_load_evaluate_and_checkpoint_errors(tmp_path):
    cfg = csi.CsiConfig(
        arch="convsqucsinet", cr=32, bits="w4a4", width=4, train_samples=40, test_samples=20,
        float_steps=3, qat_steps=2, batch_size=8,
    )  # fmt: skip
    ck, cache = tmp_path / "ck", tmp_path / "cache"
    model, meta = csi.train(cfg, ck, cache)
    assert (ck / f"{cfg.float_name}.pt").is_file() and (ck / f"{cfg.name}.pt").is_file()
    assert meta["variant"] == cfg.name and np.isfinite(meta["test_nmse_db"])
    loaded, _ = csi.load(cfg, ck)
    x = csi.datasets(cfg, cache, need_train=False)[2]
    assert csi.nmse(loaded, x) == pytest.approx(meta["test_nmse_db"], abs=1e-9)
    res = csi.evaluate(cfg, ck, cache)
    assert res["codeword_bits"] == cfg.codeword_bits == 8
    assert res["feedback_bits"] == cfg.codeword_bits * 64
    assert set(res["nmse_db"]) == {"float", "quant"}
    json.dumps(res)
    # a missing checkpoint names the command that makes it
    with pytest.raises(CheckpointError, match="qphy train csi-encoder"):
        csi.load(csi.CsiConfig(arch="convcsinet", cr=8), ck)
    # a foreign checkpoint under the right name, and a corrupt one
    other = ck / f"{cfg.float_name}.pt"
    (ck / f"{cfg.name}.pt").write_bytes(other.read_bytes())
    with pytest.raises(CheckpointError, match="holds"):
        csi.load(cfg, ck)
    (ck / f"{cfg.name}.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        csi.load_or_train(cfg, ck, cache)
    assert (ck / f"{cfg.name}.pt").read_bytes() == b"garbage"  # never silently overwritten
