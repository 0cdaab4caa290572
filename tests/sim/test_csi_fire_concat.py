"""ConvSquCsiNet with real fire modules (``--fire-expand concat``) to a bit-exact RTL verdict.

The CI conv encoder's sizes (tests/sim/conftest.py: ConvSquCsiNet, CR 32, width 4, w4a4, random
init), but each fire module keeps its 1x1 and 3x3 expand convs as two branches joined by a
channel concat, which the flow maps onto qphy's RTL stream fork and concat (docs/rtl-layers.md)
instead of the merged 3x3 conv of the default form.
"""

from __future__ import annotations

from collections import Counter

import pytest

from hw.config import HwBuildConfig
from models.csi import jobs as csi
from qphy.errors import ConfigError
from qphy.flow import build_and_verify
from sim.config import SimConfig
from tests.hw.fixture_export import make_csi_export
from tests.sim.conftest import CONV_ARCH, CONV_CR, CONV_TARGET_CYCLES, CONV_WIDTH


def test_concat_fire_block_equals_the_fire_module_and_shares_one_quantizer():
    """Float latent weights of the two branches (BN folded per half) give the fire module's
    expand stage; both branches go through the same quantizer module (one scale at the concat)."""
    import torch

    from models.csi.csinet import Fire
    from models.csi.qat import QuantAutoencoder, QuantFireConcat
    from models.registry import build_model
    from qphy.variants import parse_bits

    torch.manual_seed(2)
    fire = Fire(4, 2, 8).eval()
    with torch.no_grad():  # non-trivial BN statistics, different per half
        fire.bn.running_mean.uniform_(-1, 1)
        fire.bn.running_var.uniform_(0.5, 2)
        fire.bn.weight.uniform_(0.5, 2)
    float_model = build_model("convsqucsinet", cr=32, width=4, n_refine=0).eval()
    float_model.encoder[2] = fire
    q = QuantAutoencoder(float_model, parse_bits("w8a8"), 8, fire_expand="concat")
    block = q.encoder.blocks[2]
    assert isinstance(block, QuantFireConcat)
    assert block.expand1.quant is block.expand3.quant
    assert not any(b.mask.numel() for b in q.encoder.conv_blocks())  # nothing masked
    s = torch.randn(1, 2, 6, 6)
    got = torch.cat(
        [nn_conv(s, block.expand1.conv), nn_conv(s, block.expand3.conv)], dim=1
    )  # conv + folded bias, before LeakyReLU and the quantizer
    with torch.no_grad():
        ref = fire.bn(torch.cat([fire.expand1(s), fire.expand3(s)], dim=1))
    assert torch.allclose(got, ref, atol=1e-5)


def nn_conv(x, conv):
    """The float conv of a QuantConv2d's latent weight and bias (no quantization)."""
    import torch

    with torch.no_grad():
        return torch.nn.functional.conv2d(
            x, conv.weight, conv.bias, stride=conv.stride, padding=conv.padding
        )


def test_fire_expand_config():
    cfg = csi.CsiConfig(arch="convsqucsinet", cr=32, bits="w4a4", fire_expand="concat")
    assert cfg.name == "convsqucsinet_cr32_w4a4c8_concat_indoor"
    assert csi.CsiConfig(arch="convsqucsinet", cr=32, bits="w4a4").name == (
        "convsqucsinet_cr32_w4a4c8_indoor"
    )  # the default (merged) keeps its name and checkpoints
    assert cfg.float_name == "convsqucsinet_cr32_float_indoor"  # one float model for both
    with pytest.raises(ConfigError, match="fire-expand"):
        csi.CsiConfig(fire_expand="split")


#: Vectors checked: enough for several frames in flight under stalls, small for CI time.
VECTORS = 200


@pytest.mark.rtl
def test_convsqucsinet_fire_concat_bit_exact(verilator, tmp_path):
    exp = make_csi_export(
        tmp_path / "export",
        arch=CONV_ARCH,
        cr=CONV_CR,
        width=CONV_WIDTH,
        n_golden=VECTORS,
        fire_expand="concat",
    )
    report = build_and_verify(
        exp,
        tmp_path / "out",
        HwBuildConfig(target_cycles=CONV_TARGET_CYCLES),
        SimConfig(n_vectors=VECTORS, seed=11, source_pause_prob=0.3, sink_pause_prob=0.3),
    )
    assert report["bit_exact"] is True
    assert report["vectors_checked"] == VECTORS and report["mismatches"] == 0
    ops = Counter(layer["op_type"] for layer in report["layers"])
    # Three fire modules: each a fork after its squeeze and a concat of its two expand branches,
    # so 3 + 8 MVAUs (squeeze + 2 expands per fire, the first conv and the codeword conv).
    assert ops["DuplicateStreams_rtl"] == 3 and ops["StreamingConcat_rtl"] == 3
    assert ops["MVAU_rtl"] == 11
    assert report["cycles_per_frame"] <= CONV_TARGET_CYCLES
    print(
        f"concat form: latency {report['latency_cycles']} cycles, "
        f"{report['cycles_per_frame']} cycles/frame, estimated {report['estimated_resources']}"
    )
