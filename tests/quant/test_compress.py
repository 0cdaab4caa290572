"""Compression toolkit: masks through training and export, accounting, structured shrinking,
the experiment registry (small grid, resume), and the hardware effect in RTL."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from models.detector.fullycon import FullyCon, FullyConShape
from models.detector.structured import (
    FullyConWidths,
    GroupLasso,
    ZeroNeurons,
    neuron_masks,
    neuron_weight_masks,
    shrink,
    zero_neurons,
)
from qphy.errors import ConfigError
from qphy.variants import Bits
from quant.compress import MaskCallback, account, magnitude_masks, sparsity
from quant.compress.accounting import index_bits
from quant.trainer import fit, mse
from tests.quant.conftest import SMALL, calibrated, teacher_batches
from tests.sim.conftest import verilator  # noqa: F401 - the shared skip-or-fail fixture


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _median_threshold(model: nn.Module) -> float:
    ws = torch.cat(
        [m.weight.detach().abs().flatten() for m in model.modules() if isinstance(m, nn.Linear)]
    )
    return float(ws.median())


# ---- unstructured masks --------------------------------------------------------------------------


def test_masks_hold_zeros_through_qat_training_and_export(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    from qphy.contracts import HostExtras
    from quant.export import export_verified

    model = calibrated(Bits(4, 4))
    masks = magnitude_masks(model, _median_threshold(model))
    assert 0.45 < sparsity(masks) < 0.55
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # large lr: moments push zeros away
    batches = teacher_batches(SMALL.n_rx, SMALL.k_tx)
    fit(model, batches, mse, opt, steps=30, callbacks=[MaskCallback(masks)])
    layers = dict(model.named_modules())
    for name, mask in masks.items():
        assert torch.all(layers[name].weight[~mask] == 0)
        assert torch.any(layers[name].weight[mask] != 0)

    x = (np.random.default_rng(0).standard_normal((64, SMALL.n_rx)) * 2).astype(np.float32)
    export_verified(
        model, x, tmp_path / "export", {"variant": "pruned"}, HostExtras(decision="sign")
    )
    qonnx = ModelWrapper(str(tmp_path / "export" / "model.qonnx.onnx"))
    checked = 0
    for node in qonnx.graph.node:
        if node.op_type != "Quant" or "weight_quant" not in node.name:
            continue
        layer = node.name.split("/")[2]  # /net/net.0/weight_quant/export_handler/Quant
        w = qonnx.get_initializer(node.input[0])
        scale = qonnx.get_initializer(node.input[1])
        ints = np.round(w / scale)
        assert ints.shape == tuple(masks[layer].shape)
        assert np.all(ints[~masks[layer].numpy()] == 0), layer
        checked += 1
    assert checked == len(masks) == 3
    # Hardware non-zeros count the quantized integers: at most the kept weights.
    assert account(model).nonzero <= sum(int(m.sum()) for m in masks.values())
    assert account(model).layers[0].value_bits == 4


def test_mask_errors():
    model = calibrated(Bits(4, 4))
    with pytest.raises(ConfigError, match="threshold must be finite and >= 0"):
        magnitude_masks(model, -0.1)
    from quant.compress import apply_masks

    with pytest.raises(ConfigError, match="not a prunable layer"):
        apply_masks(model, {"nope": torch.ones(2, 2, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="has shape"):
        apply_masks(model, {"net.0": torch.ones(2, 2, dtype=torch.bool)})


# ---- accounting ----------------------------------------------------------------------------------


def test_accounting_on_a_hand_checked_tiny_model():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))
        model[2].weight.copy_(torch.tensor([[0.0, 4.0]]))
    acc = account(model)
    assert (acc.weights, acc.nonzero, acc.biases) == (8, 4, 3)
    assert acc.pruned_fraction == pytest.approx(0.5)
    # FLOPs: dense 2*in*out per layer = 12 + 4; sparse 2 per non-zero = 2 * 4.
    assert (acc.flops_dense, acc.flops) == (16, 8)
    assert (index_bits(2), index_bits(3), index_bits(4)) == (1, 2, 2)
    l1, l2 = acc.layers
    # Layer 1: dense 6*32 = 192; CSR 3 non-zeros * (32 + 2-bit column) + 3 row pointers * 2 = 108.
    assert (l1.dense_bits, l1.csr_bits, l1.memory_bits) == (192, 108, 108 + 2 * 32)
    # Layer 2: dense 2*32 = 64; CSR 1 * (32 + 1) + 2 row pointers * 1 = 35.
    assert (l2.dense_bits, l2.csr_bits, l2.memory_bits) == (64, 35, 35 + 32)
    assert acc.memory_bits == 172 + 67
    assert acc.dense_memory_bits == 192 + 64 + 3 * 32
    js = acc.to_json()
    assert js["nonzero_weights"] == 4 and js["flops_per_frame"] == 8 and len(js["layers"]) == 2
    # A dense model: CSR never wins, FLOPs are 2 per weight.
    dense = account(FullyCon(FullyConShape(n_rx=4, k_tx=2, hidden=8, n_hidden_layers=1)))
    assert dense.memory_bits == dense.dense_memory_bits == (4 * 8 + 8 * 2 + 8 + 2) * 32
    assert dense.flops == dense.flops_dense == 2 * (4 * 8 + 8 * 2)


# ---- structured pruning --------------------------------------------------------------------------


def _dyadic(model: nn.Module) -> None:
    """Round every parameter to a multiple of 2^-3 (inputs: 2^-2): through three hidden layers
    every product and sum stays a short dyadic number, exact in float32 in any summation order,
    so equality below tests the pruning, not BLAS's summation order."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.round(p * 8) / 8)


def test_shrunk_float_model_equals_the_masked_original_exactly():
    torch.manual_seed(0)
    model = FullyCon(FullyConShape(n_rx=12, k_tx=6, hidden=16, n_hidden_layers=3))
    _dyadic(model)
    keep = neuron_masks(model, fraction=0.5, multiple_of=4)
    assert [int(k.sum()) for k in keep] == [8, 8, 8]
    # The kept neurons are the strongest by L1 norm of their incoming weights.
    l1 = model.net[0].weight.abs().sum(1)
    assert l1[keep[0]].min() >= l1[~keep[0]].max()
    zero_neurons(model, keep)
    small = shrink(model, keep)
    assert small.shape == FullyConWidths(12, 6, (8, 8, 8))
    assert sum(p.numel() for p in small.parameters()) == small.shape.n_params()
    assert small.shape.n_params() < model.shape.n_params()
    x = torch.round(torch.randn(256, 12) * 4) / 4
    with torch.no_grad():
        assert torch.equal(small(x), model(x))
    # Same non-zeros, so the same sparse FLOPs; the dense FLOPs (what an MVAU does) shrink.
    assert account(small).flops == account(model).flops
    assert account(small).flops_dense == 2 * (12 * 8 + 8 * 8 + 8 * 8 + 8 * 6)


def test_shrunk_qat_model_is_bit_exact_after_masked_finetuning():
    model = calibrated(Bits(4, 4), FullyConShape(n_rx=12, k_tx=6, hidden=32, n_hidden_layers=2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(model, teacher_batches(12, 6), mse, opt, steps=10, callbacks=[GroupLasso(1e-3)])
    keep = neuron_masks(model, fraction=0.4, multiple_of=4)
    assert [int(k.sum()) for k in keep] == [20, 20]
    wm = neuron_weight_masks(model, keep)
    assert wm["net.2"].shape == (32, 32) and int(wm["net.2"].sum()) == 20 * 20
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(model, teacher_batches(12, 6, seed=2), mse, opt, steps=10, callbacks=[ZeroNeurons(keep)])
    small = shrink(model, keep)
    assert small.shape.widths == (20, 20) and small.recipe == model.recipe
    x = torch.randn(512, 12) * 3
    with torch.no_grad():
        assert torch.equal(small(x), model(x))


def test_structured_errors():
    model = FullyCon(FullyConShape(n_rx=4, k_tx=2, hidden=8, n_hidden_layers=2))
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\)"):
        neuron_masks(model, 1.0)
    with pytest.raises(ConfigError, match="2 hidden layers"):
        shrink(model, [torch.ones(8, dtype=torch.bool)])
    with pytest.raises(ConfigError, match="at least one must stay"):
        shrink(model, [torch.zeros(8, dtype=torch.bool), torch.ones(8, dtype=torch.bool)])
    with pytest.raises(ConfigError, match="needs a FullyCon"):
        neuron_masks(nn.Sequential(nn.Linear(2, 2)), 0.5)


# ---- experiments ---------------------------------------------------------------------------------


def test_pruning_experiment_small_grid_runs_and_resumes(tmp_path, monkeypatch):
    from experiments import kit
    from experiments import registry as experiments

    out = tmp_path / "pruning"
    first = experiments.run_experiment("fullycon-pruning", out, grid="small")
    assert first["computed"] == ["shipped", "t0.025", "t0.050"]
    rows = {r["key"]: r for r in first["rows"]}
    assert rows["shipped"]["account"]["pruned_fraction"] == 0.0
    for key, t in (("t0.025", 0.025), ("t0.050", 0.05)):
        assert rows[key]["masks_held"] is True
        assert rows[key]["account"]["pruned_fraction"] == pytest.approx(
            rows[key]["mask_pruned_fraction"]
        )
        assert (
            rows[key]["account"]["flops_per_frame"] < rows["shipped"]["account"]["flops_per_frame"]
        )
        assert len(rows[key]["ber"]) == 6 and rows[key]["threshold"] == t
    assert (
        rows["t0.050"]["account"]["pruned_fraction"] > rows["t0.025"]["account"]["pruned_fraction"]
    )
    for name in ("fullycon-pruning.json", "fullycon-pruning.md", "fullycon-pruning.png"):
        assert (out / name).is_file()
    assert len(list((out / "points").glob("*.json"))) == 3
    assert "| t0.025 |" in (out / "fullycon-pruning.md").read_text()

    def no_work(*args, **kwargs):
        raise AssertionError("a cached point was recomputed")

    monkeypatch.setattr(kit, "finetune", no_work)
    monkeypatch.setattr(kit, "ber", no_work)
    monkeypatch.setattr(kit, "shipped_float", no_work)
    second = experiments.run_experiment("fullycon-pruning", out, grid="small")
    assert second["computed"] == []
    assert second["rows"] == json.loads((out / "fullycon-pruning.json").read_text())["rows"]
    assert [r["ber"] for r in second["rows"]] == [r["ber"] for r in first["rows"]]


def test_quantization_experiment_tiny(tmp_path):
    from experiments.registry import run_experiment

    res = run_experiment(
        "fullycon-quantization",
        tmp_path,
        grid="small",
        overrides={"qat_steps": 3, "eval_bits_per_snr": 2000},
    )
    assert [r["key"] for r in res["rows"]] == ["float", "w4a8"]
    fp, q4 = res["rows"]
    weights, biases = fp["account"]["weights"], fp["account"]["biases"]
    assert fp["account"]["dense_memory_bits"] == 32 * (weights + biases)
    assert q4["account"]["dense_memory_bits"] == 4 * weights + 32 * biases
    assert q4["memory_saved_vs_float32"] == pytest.approx(
        1 - (4 * weights + 32 * biases) / (32 * (weights + biases))
    )
    assert (tmp_path / "fullycon-quantization.md").is_file()


def test_experiment_errors(tmp_path):
    from experiments.registry import experiment_names, run_experiment

    assert {"fullycon-pruning", "fullycon-quantization"} <= set(experiment_names())
    with pytest.raises(ConfigError, match="unknown experiment 'nope'; known: .*fullycon-pruning"):
        run_experiment("nope", tmp_path)
    with pytest.raises(ConfigError, match="unknown grid 'huge'"):
        run_experiment("fullycon-pruning", tmp_path, grid="huge")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['stepz'\]"):
        run_experiment("fullycon-pruning", tmp_path, overrides={"stepz": 1})


# ---- hardware effect in RTL ----------------------------------------------------------------------


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.usefixtures("verilator")
def test_structured_pruned_detector_is_smaller_in_rtl(tmp_path):
    """A 30 -> 64 -> 64 -> 20 w4a4 detector against the same detector with half of every
    hidden layer's neurons removed (masked fine-tuning, then shrink): both bit-exact in RTL,
    the pruned one with fewer cycles per frame or fewer estimated resources."""
    from experiments.hardware import build_detector, hardware_row
    from hw.config import HwBuildConfig
    from models.detector.config import QuantConfig
    from models.detector.finetune import finetune
    from sim.config import SimConfig

    shape = FullyConShape(hidden=64, n_hidden_layers=2)
    base = calibrated(Bits(4, 4), shape)
    keep = neuron_masks(base, fraction=0.5, multiple_of=8)
    pruned = calibrated(Bits(4, 4), shape)
    finetune(pruned, QuantConfig(batch_size=100), steps=5, lr=1e-4, callbacks=[ZeroNeurons(keep)])
    pruned = shrink(pruned, keep)
    assert pruned.shape.widths == (32, 32)

    hw_cfg = HwBuildConfig(target_cycles=64)
    sim_cfg = SimConfig(n_vectors=300, seed=7)
    rows = {
        name: hardware_row(build_detector(model, tmp_path / name, name, hw_cfg, sim_cfg, 256))
        for name, model in (("fullycon_w4a4_h64", base), ("fullycon_w4a4_h64_pruned50", pruned))
    }
    full, small = rows["fullycon_w4a4_h64"], rows["fullycon_w4a4_h64_pruned50"]
    assert full["bit_exact"] and small["bit_exact"]
    assert full["vectors_checked"] == small["vectors_checked"] == 300
    assert small["weights"] < full["weights"]
    assert small["layer_sizes"] == [[30, 32], [32, 32], [32, 20]]
    assert small["cycles_per_frame"] <= full["cycles_per_frame"]
    assert small["cycles_per_frame"] < full["cycles_per_frame"] or small["LUT"] < full["LUT"]
    rep = json.loads((tmp_path / "fullycon_w4a4_h64_pruned50" / "report.json").read_text())
    assert rep["compression"]["weights"] == 30 * 32 + 32 * 32 + 32 * 20
