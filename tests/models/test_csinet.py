"""Tests of the CSI-feedback autoencoders (models/csi/csinet.py)."""

from __future__ import annotations

import pytest
import torch

from models.csi.csinet import (
    ARCHS,
    CODEWORD_SIZES,
    Centre,
    ConvCsiNet,
    ConvSquCsiNet,
    CsiNetPlus,
    Fire,
    codeword_size,
    cost_table,
    merge_fire_expand,
    model_cost,
)
from models.registry import build_model, model_names
from qphy.errors import ConfigError

CRS = sorted(CODEWORD_SIZES)

# CsiNet+ at CR 4 by the paper's count is "about 2.12 M". Ours: encoder 2 x 198 + 2049 * 512,
# decoder 513 * 2048 + 198 + 5 * 4300 (RefineNet: 792 + 3216 + 290) + 38 = 2,121,834 weights.
CSINETPLUS_CR4_PARAMS = 2_121_834
PAPER_CR4_PARAMS = 2.12e6
PAPER_TOLERANCE = 0.005  # 0.5 %: the paper rounds to three digits


@pytest.fixture(scope="module")
def costs():
    return {(c.arch, c.cr): c for c in cost_table()}


@pytest.mark.parametrize("cr", CRS, ids=[f"cr{c}" for c in CRS])
@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_range(arch, cr):
    torch.manual_seed(0)
    model = build_model(arch, cr=cr).eval()
    x = torch.rand(3, 2, 32, 32)
    with torch.no_grad():
        code = model.encoder(x)
        y = model.decoder(code)
    assert code.shape == (3, 2048 // cr)
    assert y.shape == (3, 2, 32, 32)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.equal(model(x), y)
    assert model.codeword_size == codeword_size(cr) == 2048 // cr


def test_registry_lists_the_three_archs():
    assert set(ARCHS) <= set(model_names())
    assert isinstance(build_model("csinetplus", cr=8), CsiNetPlus)
    assert isinstance(build_model("convcsinet"), ConvCsiNet)
    assert isinstance(build_model("convsqucsinet", cr=32), ConvSquCsiNet)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("cr", [0, 2, 64, 5, True, "4"])
def test_bad_cr_is_config_error(arch, cr):
    with pytest.raises(ConfigError, match="compression ratio cr=.* is not one of: 4, 8, 16, 32"):
        build_model(arch, cr=cr)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="downsample='maxpool'"):
        ConvCsiNet(downsample="maxpool")
    with pytest.raises(ConfigError, match="width must be a multiple of 4"):
        ConvCsiNet(width=6)
    with pytest.raises(ConfigError, match="squeeze_div must be"):
        ConvSquCsiNet(squeeze_div=3)


def test_csinetplus_cr4_params_near_paper(costs):
    cost = costs["csinetplus", 4]
    assert cost.params == CSINETPLUS_CR4_PARAMS
    assert abs(cost.params - PAPER_CR4_PARAMS) / PAPER_CR4_PARAMS < PAPER_TOLERANCE


def test_csinetplus_params_by_formula(costs):
    for cr in CRS:
        m = 2048 // cr
        cost = costs["csinetplus", cr]
        assert cost.encoder_params == 2 * (2 * 49 + 1) * 2 + 2049 * m
        assert cost.encoder_flops == 2 * 32 * 32 * (2 * 49 + 1) * 2 * 2 + 2 * 2049 * m


def test_conv_formula_on_a_single_layer():
    model = ConvCsiNet(cr=4)
    first = model_cost(model).layers[0]
    # 3x3 conv 2 -> 16 on a 32x32 map.
    assert first.params == (2 * 9 + 1) * 16
    assert first.flops == 2 * 32 * 32 * (2 * 9 + 1) * 16


@pytest.mark.parametrize("cr", CRS, ids=[f"cr{c}" for c in CRS])
def test_convsqu_about_half_the_weights_a_third_of_encoder_flops(costs, cr):
    squ, conv = costs["convsqucsinet", cr], costs["convcsinet", cr]
    assert 0.4 <= squ.params / conv.params <= 0.6
    assert 0.25 <= squ.encoder_flops / conv.encoder_flops <= 0.45


def test_conv_nets_have_no_linear_layers(costs):
    for arch in ("convcsinet", "convsqucsinet"):
        for cr in CRS:
            assert all(layer.kind == "conv" for layer in costs[arch, cr].layers)


def test_encoders_have_no_pooling_by_default():
    for arch in ARCHS:
        enc = build_model(arch, cr=4).encoder
        assert not any(isinstance(m, torch.nn.modules.pooling._AvgPoolNd) for m in enc.modules())


def test_encoders_start_by_centring():
    for arch in ARCHS:
        enc = build_model(arch, cr=4).encoder
        assert isinstance(enc[0], Centre)
        assert torch.equal(enc[0](torch.full((1, 2, 32, 32), 0.5)), torch.zeros(1, 2, 32, 32))


def test_avgpool_variant_matches_shapes_and_pools():
    model = ConvCsiNet(cr=16, downsample="avgpool").eval()
    assert sum(isinstance(m, torch.nn.AvgPool2d) for m in model.encoder.modules()) == 2
    with torch.no_grad():
        assert model.encoder(torch.rand(2, 2, 32, 32)).shape == (2, 128)


@pytest.mark.parametrize("stride", [1, 2])
def test_merged_fire_expand_is_exact(stride):
    torch.manual_seed(1)
    fire = Fire(8, 4, 16, stride=stride).eval()
    s = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        want = torch.cat([fire.expand1(s), fire.expand3(s)], dim=1)
        got = merge_fire_expand(fire)(s)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_cost_is_independent_of_training_mode():
    model = ConvSquCsiNet(cr=8).train()
    cost = model_cost(model)
    assert model.training
    assert cost.torch_params == sum(p.numel() for p in model.parameters())
    assert cost.params == cost.encoder_params + cost.decoder_params
