"""Compression toolkit, the methods after pruning: k-means weight sharing (tied fine-tuning,
codebook memory, snapping to a FINN-expressible grid), low-rank factorisation, knowledge
distillation, and their experiments (small grid, outputs, resume from the cache)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from models.detector.fullycon import FullyCon, FullyConShape
from models.detector.lowrank import factorize, hidden_ranks
from qphy.errors import ConfigError, PipelineError
from qphy.variants import Bits
from quant.compress import (
    Distillation,
    LowRankLinear,
    WeightSharing,
    account,
    distinct_values,
    factorize_linear,
    share_weights,
    shared_memory,
    snap_codebook_to_grid,
)
from quant.compress.sharing import kmeans_1d
from quant.trainer import fit, mse
from tests.quant.conftest import SMALL, teacher_batches


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _float_small(seed: int = 0) -> FullyCon:
    torch.manual_seed(seed)
    return FullyCon(SMALL)


# ---- k-means weight sharing ----------------------------------------------------------------------


def test_kmeans_1d_linear_init_converges_to_cluster_means():
    values = torch.tensor([0.0, 0.2, 1.1, 1.2, 3.0, 4.0])
    centroids, index = kmeans_1d(values, 3)
    # Linear init over [0, 4]: 0, 2, 4. Step 1: {0, .2} {1.1, 1.2, 3} {4} -> 0.1, 1.77, 4.
    # Step 2: 3.0 moves to the top cluster -> 0.1, 1.15, 3.5; then nothing moves.
    assert index.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.allclose(centroids, torch.tensor([0.1, 1.15, 3.5]))
    # A fixed point: every value is nearest to its own centroid.
    dist = (values[:, None] - centroids[None, :]).abs()
    assert torch.equal(dist.argmin(dim=1), index)
    # An empty cluster keeps its (linear-init) centroid: {0 .. 1} {} {4}.
    centroids, index = kmeans_1d(torch.tensor([0.0, 0.1, 0.2, 0.9, 1.0, 4.0]), 3)
    assert index.tolist() == [0, 0, 0, 0, 0, 2]
    assert torch.allclose(centroids, torch.tensor([0.44, 2.0, 4.0]))


@pytest.mark.parametrize("bits", [2, 3])
def test_shared_layers_stay_tied_through_finetuning(bits):
    model = _float_small()
    books = share_weights(model, bits)
    assert set(books) == {"net.0", "net.2", "net.4"}
    index_before = {n: b.index.clone() for n, b in books.items()}
    centroids_before = {n: b.centroids.clone() for n, b in books.items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # large lr: weights try to drift apart
    res = fit(model, teacher_batches(12, 6), mse, opt, steps=20, callbacks=[WeightSharing(books)])
    assert res.steps == 20
    layers = dict(model.named_modules())
    for name, book in books.items():
        assert torch.equal(layers[name].weight, book.centroids[book.index])
        assert torch.equal(book.index, index_before[name])  # assignments fixed
        assert not torch.equal(book.centroids, centroids_before[name])  # centroids trained
    distinct = distinct_values(model)
    assert all(1 < d <= 2**bits for d in distinct.values()), distinct
    # A layer that is not shared keeps every weight distinct.
    assert distinct_values(_float_small())["net.2"] == 32 * 32


def test_centroid_update_is_the_mean_gradient_step_under_sgd():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 4))
    books = share_weights(model, 1)
    x, y = torch.randn(16, 5), torch.randn(16, 4)
    # The gradient at the tied weights, per weight.
    ref = nn.Sequential(nn.Linear(5, 4))
    ref.load_state_dict(model.state_dict())
    mse(ref(x), y).backward()
    grad = ref[0].weight.grad
    index = books["0"].index
    old = books["0"].centroids.clone()
    expected = torch.stack([old[k] - 0.1 * grad[index == k].mean() for k in range(2)])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, iter([(x, y)]), mse, opt, steps=1, callbacks=[WeightSharing(books)])
    assert torch.allclose(books["0"].centroids, expected, atol=1e-6)
    assert torch.equal(model[0].weight, books["0"].centroids[index])


def test_shared_memory_on_a_hand_checked_tiny_model():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1, bias=False))
    mem = shared_memory(model, 2)
    # Layer 1: 6 weights x 2-bit index + 4 x 32-bit centroids + 2 x 32-bit biases = 204.
    # Layer 2: 2 x 2 + 4 x 32 + no bias = 132.
    assert [layer.memory_bits for layer in mem.layers] == [204, 132]
    assert mem.memory_bits == 336
    assert shared_memory(model, 2, codebook_bits=8).memory_bits == (12 + 32 + 64) + (4 + 32)
    js = mem.to_json()
    assert js["memory_bits"] == 336 and js["layers"][0]["codebook_entries"] == 4


@pytest.mark.parametrize("per_channel", [False, True], ids=["layer_scale", "channel_scale"])
def test_snapped_codebook_is_integers_times_power_of_two_per_channel(per_channel):
    from models.detector.qat import QuantFullyCon
    from quant.recipes import Recipe

    model = _float_small()
    with torch.no_grad():  # one large outlier: the layer-wide grid gets coarse
        model.net[2].weight[0, 0] = 3.0
    books = share_weights(model, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(model, teacher_batches(12, 6), mse, opt, steps=5, callbacks=[WeightSharing(books)])
    before = {n: m.weight.detach().clone() for n, m in model.named_modules() if n in ("net.2",)}
    snap = snap_codebook_to_grid(model, 8, per_channel=per_channel)
    layers = dict(model.named_modules())
    for name, s in snap.items():
        w = layers[name].weight.detach()
        assert s.ints.dtype == torch.int64 and int(s.ints.abs().max()) <= 127
        exps = torch.log2(s.scale)
        assert torch.equal(exps, torch.round(exps))  # powers of two
        assert torch.equal(w, s.ints.to(w.dtype) * s.scale[:, None])
        # The scale is the finest that fits: the largest integer needs the top bit.
        rows = s.ints.abs().amax(dim=1)
        assert int(rows.max()) > 63 if not per_channel else bool((rows[rows > 0] > 63).all())
        if not per_channel:
            assert len(set(exps.tolist())) == 1
            assert int(torch.unique(w).numel()) <= 2**3  # one integer codebook per layer
        else:
            for row in w:
                assert int(torch.unique(row).numel()) <= 2**3
    if per_channel:  # the outlier's channel is coarse, the others fine
        assert snap["net.2"].scale[0] > snap["net.2"].scale[1:].max()
    # Rounding moved the weights by at most half a step.
    step = snap["net.2"].scale[:, None]
    assert bool(((layers["net.2"].weight - before["net.2"]).abs() <= step / 2 + 1e-7).all())
    # quant.recipes' 8-bit per-channel PoT weight quantizer represents them exactly, i.e. the
    # snapped model is integer weights x per-channel power-of-two scale, as FINN needs.
    qat = QuantFullyCon(Recipe(Bits(8, 8)), SMALL)
    qat.load_float(model)
    for q, f in zip(qat.linears(), [m for m in model.net if isinstance(m, nn.Linear)], strict=True):
        assert torch.equal(q.quant_weight().value.detach(), f.weight.detach())


def test_sharing_errors():
    with pytest.raises(ConfigError, match=r"index bits must be an integer in 1\.\.16"):
        share_weights(_float_small(), 0)
    with pytest.raises(ConfigError, match=r"cannot share \['net.1'\]"):
        share_weights(_float_small(), 2, layers=["net.1"])
    with pytest.raises(ConfigError, match=r"grid bits must be an integer in 2\.\.16"):
        snap_codebook_to_grid(_float_small(), 1)


# ---- low-rank factorisation ----------------------------------------------------------------------


def test_full_rank_factorisation_reproduces_the_layer_and_the_model():
    torch.manual_seed(0)
    layer = nn.Linear(24, 16)
    low = factorize_linear(layer, 16)
    x = torch.randn(128, 24)
    with torch.no_grad():
        assert torch.allclose(low(x), layer(x), atol=1e-5, rtol=0)
    model = _float_small()
    full = factorize(model, {0: 12, 1: 32, 2: 6})  # every layer at full rank
    assert all(isinstance(full.net[i], LowRankLinear) for i in (0, 2, 4))
    x = torch.randn(256, 12) * 2
    with torch.no_grad():
        assert torch.allclose(full(x), model(x), atol=1e-5, rtol=0)
    assert isinstance(model.net[2], nn.Linear)  # the original is untouched


def test_rank_r_is_the_best_rank_r_approximation_with_the_right_counts():
    shape = FullyConShape(n_rx=12, k_tx=6, hidden=32, n_hidden_layers=3)
    torch.manual_seed(1)
    model = FullyCon(shape)
    ranks = hidden_ranks(model, 5)
    assert ranks == {1: 5, 2: 5}
    low = factorize(model, ranks)
    w = model.net[2].weight.detach().double()
    lr = low.net[2]
    assert (lr.first.weight.shape, lr.second.weight.shape) == ((5, 32), (32, 5))
    assert lr.first.bias is None and torch.equal(lr.second.bias, model.net[2].bias)
    w5 = (lr.second.weight @ lr.first.weight).detach().double()
    s = torch.linalg.svdvals(w)
    s5 = torch.linalg.svdvals(w5)  # the top 5 singular values kept, the rest gone
    assert torch.allclose(s5[:5], s[:5], rtol=1e-5) and float(s5[5:].max()) < 1e-5
    assert torch.allclose(torch.linalg.norm(w - w5) ** 2, (s[5:] ** 2).sum(), rtol=1e-5)
    weights = 12 * 32 + 2 * 5 * (32 + 32) + 32 * 6
    acc = account(low)
    assert (
        acc.weights == weights == sum(p.numel() for n, p in low.named_parameters() if "weight" in n)
    )
    assert acc.biases == 32 * 3 + 6
    assert acc.flops_dense == 2 * weights
    assert acc.dense_memory_bits == 32 * (weights + 32 * 3 + 6)
    # Fine-tuning through the one trainer keeps the factorised structure and learns.
    opt = torch.optim.Adam(low.parameters(), lr=1e-2)
    res0 = fit(low, teacher_batches(12, 6), mse, torch.optim.SGD(low.parameters(), lr=0.0), steps=3)
    res = fit(low, teacher_batches(12, 6), mse, opt, steps=60)
    assert res.mean_recent_loss < res0.mean_recent_loss
    assert low.net[2].first.weight.shape == (5, 32)


def test_lowrank_errors():
    model = _float_small()
    with pytest.raises(ConfigError, match=r"must be an integer in 1\.\.12, got 13"):
        factorize(model, {0: 13})
    with pytest.raises(ConfigError, match=r"must be an integer in 1\.\.32, got 0"):
        factorize(model, {1: 0})
    with pytest.raises(ConfigError, match=r"layer numbers \[3\] out of range 0\.\.2"):
        factorize(model, {3: 2})
    with pytest.raises(ConfigError, match="already factorised"):
        factorize(factorize(model, {1: 4}), {1: 2})
    with pytest.raises(ConfigError, match="needs a float FullyCon"):
        factorize(nn.Sequential(nn.Linear(2, 2)), {0: 1})


# ---- knowledge distillation ----------------------------------------------------------------------


def _linear(weight: list[float]) -> nn.Linear:
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
    return layer


def test_distillation_loss_on_a_hand_computed_case_and_a_frozen_teacher():
    student, teacher = _linear([1.0, 0.0]), _linear([0.0, 1.0])
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = torch.zeros(2, 1)
    # Student outputs 1, 3; teacher 2, 4. Task MSE (1 + 9) / 2 = 5; distillation MSE
    # (1 + 1) / 2 = 1; alpha 0.5: 5.5.
    kd = Distillation(teacher, alpha=0.5)
    kd.on_train_begin(student)
    out = student(x)
    total = kd.loss(student, mse(out, y), x, y)
    assert total.item() == pytest.approx(5.5)
    # d/dw [mean(out^2) + 0.5 mean((out - t)^2)] = mean(2 out x) + 0.5 mean(2 (out - t) x)
    #   = [(2*1*1 + 2*3*3) / 2, (2*1*2 + 2*3*4) / 2] + 0.5 [(-2*1 - 2*3) / 2, (-2*2 - 2*4) / 2]
    #   = [10, 14] + [-2, -3] = [8, 11]
    total.backward()
    assert student.weight.grad.tolist() == [[8.0, 11.0]]
    assert teacher.weight.grad is None and not teacher.weight.requires_grad
    kd.on_train_end(student)
    assert not student._forward_hooks

    # Through fit: the recorded loss is the same 5.5, the teacher neither gets a gradient nor
    # changes (Adam would move any parameter it was handed), and the hook is gone afterwards.
    student = _linear([1.0, 0.0])
    opt = torch.optim.Adam([*student.parameters(), *teacher.parameters()], lr=0.1)
    res = fit(student, iter([(x, y)] * 3), mse, opt, steps=3, callbacks=[kd])
    assert teacher.weight.tolist() == [[0.0, 1.0]] and teacher.weight.grad is None
    assert student.weight.tolist() != [[1.0, 0.0]]
    assert not student._forward_hooks
    fresh = _linear([1.0, 0.0])
    one = fit(
        fresh,
        iter([(x, y)]),
        mse,
        torch.optim.SGD(fresh.parameters(), lr=0.0),
        steps=1,
        callbacks=[kd],
    )
    assert one.last_loss == pytest.approx(5.5)
    assert res.steps == 3


def test_distillation_pulls_a_student_towards_its_teacher():
    """With the task targets uninformative (zeros) the distilled student learns the teacher."""
    torch.manual_seed(0)
    teacher = nn.Linear(4, 2)
    student = nn.Linear(4, 2)
    gen = torch.Generator().manual_seed(0)

    def batch():
        return torch.randn(32, 4, generator=gen), torch.zeros(32, 2)

    fit(
        student,
        batch,
        mse,
        torch.optim.Adam(student.parameters(), lr=0.05),
        steps=300,
        callbacks=[Distillation(teacher, alpha=10.0)],
    )
    # Minimiser of mean(s^2) + 10 mean((s - t)^2): s = 10 t / 11.
    with torch.no_grad():
        assert torch.allclose(student.weight, teacher.weight * 10 / 11, atol=0.02)


def test_distillation_errors():
    with pytest.raises(ConfigError, match="alpha must be finite and >= 0"):
        Distillation(nn.Linear(2, 1), alpha=-1.0)
    kd = Distillation(nn.Linear(2, 1))
    x = torch.zeros(3, 2)
    with pytest.raises(PipelineError, match="forward pass on this step's inputs was not seen"):
        kd.loss(nn.Linear(2, 1), torch.tensor(0.0), x, x)


# ---- experiments ---------------------------------------------------------------------------------


def _no_work(*args, **kwargs):
    raise AssertionError("a cached point was recomputed")


def _rerun_from_cache(name, out, module, first, monkeypatch):
    from experiments import kit as experiments
    from experiments.registry import run_experiment

    for target, attr in (
        (experiments, "finetune"),
        (experiments, "shipped_float"),
        (experiments, "ber"),
    ):
        monkeypatch.setattr(target, attr, _no_work)
    if hasattr(module, "ber"):
        monkeypatch.setattr(module, "ber", _no_work)
    second = run_experiment(name, out, grid="small")
    assert second["computed"] == []
    assert second["rows"] == json.loads((out / f"{name}.json").read_text())["rows"]
    assert [r["ber"] for r in second["rows"]] == [r["ber"] for r in first["rows"]]


def _outputs(out, name, n_points):
    for ext in ("json", "md", "png"):
        assert (out / f"{name}.{ext}").stat().st_size > 0
    assert len(list((out / "points").glob("*.json"))) == n_points
    return (out / f"{name}.md").read_text()


def test_sharing_experiment_small_grid_runs_and_resumes(tmp_path, monkeypatch):
    from experiments.registry import run_experiment
    from experiments.studies import fullycon_sharing as exp_sharing

    out = tmp_path / "sharing"
    first = run_experiment("fullycon-sharing", out, grid="small")
    assert first["computed"] == ["float", "kmeans_b3", "qat_w3a8"]
    fp, km, qat = first["rows"]
    weights, biases = fp["account"]["weights"], fp["account"]["biases"]
    assert km["max_distinct_per_layer"] <= 8 and km["snapped"]["max_distinct_per_layer"] <= 8
    n_layers = len(fp["account"]["layers"])
    assert km["memory_bits"] == 3 * weights + n_layers * 8 * 32 + 32 * biases
    assert qat["memory_bits"] == 3 * weights + 32 * biases
    assert km["snapped"]["finn_memory_bits"] == 8 * weights + 32 * biases
    assert len(set(km["snapped"]["scale_exponents"]["net.2"])) == 1
    for r in (km, km["snapped"], km["snapped_per_channel"], qat):
        assert len(r["ber"]) == 6 and all(0.0 <= b <= 0.5 for b in r["ber"])
    md = _outputs(out, "fullycon-sharing", 3)
    assert "| kmeans_b3_snap8 |" in md and "| kmeans_b3_snap8ch |" in md
    _rerun_from_cache("fullycon-sharing", out, exp_sharing, first, monkeypatch)


def test_lowrank_experiment_small_grid_runs_and_resumes(tmp_path, monkeypatch):
    from experiments.registry import run_experiment
    from experiments.studies import fullycon_lowrank as exp_lowrank

    out = tmp_path / "lowrank"
    first = run_experiment("fullycon-lowrank", out, grid="small")
    assert first["computed"] == ["float", "rank20"]
    fp, r20 = first["rows"]
    assert fp["account"]["weights"] == 30 * 200 + 3 * 200 * 200 + 200 * 20
    assert r20["factorised_layers"] == [1, 2, 3]
    assert r20["account"]["weights"] == 30 * 200 + 3 * 20 * 400 + 200 * 20
    assert r20["account"]["flops_per_frame"] == 2 * r20["account"]["weights"]
    assert r20["account"]["biases"] == fp["account"]["biases"]
    assert len(r20["ber_before_finetune"]) == 6
    assert "| rank20 | 20 | 34000 |" in _outputs(out, "fullycon-lowrank", 2)
    _rerun_from_cache("fullycon-lowrank", out, exp_lowrank, first, monkeypatch)


def test_distillation_experiment_small_grid_runs_and_resumes(tmp_path, monkeypatch):
    from experiments.registry import run_experiment
    from experiments.studies import fullycon_distillation as exp_distill

    out = tmp_path / "distill"
    first = run_experiment("fullycon-distillation", out, grid="small")
    assert first["computed"] == ["teacher", "h50_w4a4_alone", "h50_w4a4_kd"]
    teacher, alone, kd = first["rows"]
    assert teacher["account"]["weights"] == 130_000
    for r in (alone, kd):
        assert r["width"] == 50 and r["account"]["weights"] == 30 * 50 + 3 * 50 * 50 + 50 * 20
        assert r["account"]["layers"][0]["value_bits"] == 4
    assert alone["teacher"] is None and kd["teacher"] == "float FullyCon 200"
    # Same init, data and steps: only the distillation term differs, and it is in the loss.
    assert kd["final_train_loss"] != alone["final_train_loss"]
    assert "| h50_w4a4_kd | 50 | yes |" in _outputs(out, "fullycon-distillation", 3)
    _rerun_from_cache("fullycon-distillation", out, exp_distill, first, monkeypatch)


def test_new_experiments_are_registered_and_reject_unknown_settings(tmp_path):
    from experiments.registry import experiment_names, run_experiment

    names = {"fullycon-sharing", "fullycon-lowrank", "fullycon-distillation"}
    assert names <= set(experiment_names())
    for name in sorted(names):
        with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['stepz'\]"):
            run_experiment(name, tmp_path, overrides={"stepz": 1})
