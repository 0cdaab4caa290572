"""The shared training loop: learning, callback order, loss hooks, masks, reproducibility."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qphy.errors import ConfigError
from quant.trainer import AfterStep, Callback, FitResult, L1Penalty, fit, mse


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def _batches(seed: int = 1, batch_size: int = 16):
    """A linear target with a fixed teacher, sampled from its own generator."""
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(4, 2, generator=gen)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(batch_size, 4, generator=gen)
        return x, x @ teacher

    return batch


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


def test_fit_reduces_the_loss_and_leaves_eval_mode():
    model = _model()
    batch = _batches()
    x, y = batch()
    with torch.no_grad():
        before = mse(model(x), y).item()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    res = fit(model, batch, mse, opt, steps=200)
    assert isinstance(res, FitResult) and res.steps == 200 and res.wall_s > 0
    with torch.no_grad():
        after = mse(model(x), y).item()
    assert after < 0.1 * before
    assert res.mean_recent_loss < 0.1 * before and res.last_loss < 0.1 * before
    assert not model.training


def test_callbacks_fire_in_order_with_step_numbers():
    calls: list[tuple] = []

    class Recorder(Callback):
        def __init__(self, name: str):
            self.name = name

        def on_train_begin(self, model):
            calls.append((self.name, "begin", model.training))

        def loss(self, model, loss, inputs, targets):
            calls.append((self.name, "loss"))
            return loss

        def after_step(self, model, step):
            calls.append((self.name, "after", step))

        def on_train_end(self, model):
            calls.append((self.name, "end", model.training))

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    fit(model, _batches(), mse, opt, steps=2, callbacks=[Recorder("a"), Recorder("b")])
    step = [("a", "loss"), ("b", "loss"), ("a", "after"), ("b", "after")]
    expected = [("a", "begin", True), ("b", "begin", True)]
    for i in range(2):
        expected += [c if c[1] == "loss" else (*c, i) for c in step]
    expected += [("a", "end", True), ("b", "end", True)]
    assert calls == expected


def test_loss_hook_term_reaches_the_gradient():
    def l1_norm(model: nn.Module) -> float:
        return sum(w.abs().sum().item() for w in _weights(model))

    norms = {}
    for weight in (0.0, 10.0):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        res = fit(model, _batches(), mse, opt, steps=20, callbacks=[L1Penalty(weight, _weights)])
        norms[weight] = (l1_norm(model), res.last_loss)
    assert norms[10.0][0] < 0.5 * norms[0.0][0]
    assert norms[10.0][1] > norms[0.0][1]  # the recorded loss includes the penalty


def test_l1_penalty_rejects_a_negative_weight():
    with pytest.raises(ConfigError, match="L1 penalty weight"):
        L1Penalty(-1.0, _weights)


def test_after_step_keeps_a_masked_weight_at_zero():
    model = _model()
    first = model[0]
    mask = torch.ones_like(first.weight)
    mask[:, :2] = 0

    @torch.no_grad()
    def apply_mask() -> None:
        first.weight.mul_(mask)

    apply_mask()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    fit(model, _batches(), mse, opt, steps=10, callbacks=[AfterStep(apply_mask)])
    assert torch.all(first.weight[mask == 0] == 0)
    assert torch.all(first.weight[mask == 1] != 0)


def test_fit_equals_a_hand_written_loop_bit_for_bit():
    def reference(model: nn.Module, steps: int) -> None:
        batch = _batches()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[5], gamma=0.5)
        model.train()
        for _ in range(steps):
            x, y = batch()
            loss = torch.mean((model(x) - y) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()

    ref = _model()
    reference(ref, 12)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[5], gamma=0.5)
    fit(model, _batches(), mse, opt, steps=12, scheduler=sched)
    for (name, a), b in zip(ref.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_iterable_batches_and_running_out():
    batch = _batches()
    data = [batch() for _ in range(3)]
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    assert fit(model, data, mse, opt, steps=3).steps == 3
    with pytest.raises(ConfigError, match="ran out after 3 of 4 steps"):
        fit(model, data, mse, opt, steps=4)


def test_zero_steps_and_bad_steps():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    res = fit(model, _batches(), mse, opt, steps=0)
    assert res.steps == 0 and res.last_loss != res.last_loss  # NaN
    with pytest.raises(ConfigError, match="non-negative"):
        fit(model, _batches(), mse, opt, steps=-1)
