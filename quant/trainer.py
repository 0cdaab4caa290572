"""The one training loop of quant/: every model of the quant stage is trained through :func:`fit`.

Contract: :func:`fit` takes a model, a source of ``(inputs, targets)`` batches, a loss function,
an optimizer (and an optional LR scheduler) built by the caller, and runs exactly ``steps``
steps. It leaves the model trained in place, in eval mode, and returns a :class:`FitResult`.
Randomness is the caller's: batches come from the caller's generator, so a seeded caller gets
bit-identical weights on every run.

Each step, in this order (the order decides the weights bit for bit; do not reorder):

1. ``inputs, targets = next batch``
2. ``loss = loss_fn(model(inputs), targets)``
3. every callback's :meth:`Callback.loss` in turn (regularisers, distillation)
4. ``optimizer.zero_grad(set_to_none=True)``, ``loss.backward()``, ``optimizer.step()``
5. ``scheduler.step()`` when there is a scheduler
6. every callback's :meth:`Callback.after_step` in turn (masks, pruning)

Extra behaviour (a penalty, a mask, a schedule) goes into a :class:`Callback`, never into a copy
of the loop.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from qphy.errors import ConfigError

log = logging.getLogger(__name__)

#: Steps averaged into :attr:`FitResult.mean_recent_loss` and the progress display.
RECENT_STEPS = 100

Batch = tuple[torch.Tensor, torch.Tensor]
#: A callable returning one batch per call, or an iterable of batches (at least ``steps`` long).
Batches = Callable[[], Batch] | Iterable[Batch]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Callback:
    """Hooks into :func:`fit`; every method is a no-op here, override the ones you need."""

    def on_train_begin(self, model: torch.nn.Module) -> None:
        """Called once, after ``model.train()`` and before the first step."""

    def loss(
        self,
        model: torch.nn.Module,
        loss: torch.Tensor,
        inputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """Returns the loss to minimise, given the loss so far (add a term to regularise).

        Args:
            model: The model being trained.
            loss: The data loss, plus the terms of the callbacks before this one.
            inputs: This step's inputs.
            targets: This step's targets.

        Returns:
            The loss handed to the next callback, and finally to ``backward()``.
        """
        return loss

    def after_step(self, model: torch.nn.Module, step: int) -> None:
        """Called after the optimizer and scheduler steps; ``step`` counts from 0."""

    def on_train_end(self, model: torch.nn.Module) -> None:
        """Called once after the last step, before ``model.eval()``."""


class AfterStep(Callback):
    """Calls a plain function after every step, e.g. re-applying pruning masks.

    Args:
        fn: Called with no arguments after each optimizer (and scheduler) step.
    """

    def __init__(self, fn: Callable[[], object]):
        self.fn = fn

    def after_step(self, model: torch.nn.Module, step: int) -> None:
        self.fn()


class L1Penalty(Callback):
    """Adds ``weight * sum(|p|)`` over the parameters ``params_fn(model)`` to the loss.

    Args:
        weight: Factor of the L1 term; zero turns the penalty off.
        params_fn: Picks the penalised tensors from the model (e.g. the weights of the linear
            layers, not their biases).

    Raises:
        ConfigError: ``weight`` is negative or not finite.
    """

    def __init__(
        self, weight: float, params_fn: Callable[[torch.nn.Module], Iterable[torch.Tensor]]
    ):
        if not (0.0 <= float(weight) < float("inf")):
            raise ConfigError(f"L1 penalty weight must be finite and >= 0, got {weight!r}")
        self.weight = float(weight)
        self.params_fn = params_fn

    def loss(
        self,
        model: torch.nn.Module,
        loss: torch.Tensor,
        inputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        params = list(self.params_fn(model))
        if not params or self.weight == 0.0:
            return loss
        return loss + self.weight * sum(p.abs().sum() for p in params)


@dataclass(frozen=True)
class FitResult:
    """What one :func:`fit` run did.

    Attributes:
        steps: Optimizer steps taken.
        mean_recent_loss: Mean loss of the last ``RECENT_STEPS`` steps (NaN after no steps).
        last_loss: Loss of the last step (NaN after no steps).
        wall_s: Wall-clock seconds of the loop, callbacks included.
    """

    steps: int
    mean_recent_loss: float
    last_loss: float
    wall_s: float


def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error, computed as ``mean((outputs - targets) ** 2)``.

    The loss of both shipped trainings; kept in this exact form (not ``F.mse_loss``) because the
    checkpoints were trained with it and a different kernel may round differently.
    """
    return torch.mean((outputs - targets) ** 2)


def progress_bar() -> Progress:
    """The rich progress display of training: steps, loss, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


def fit(
    model: torch.nn.Module,
    batches: Batches,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    steps: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    callbacks: Sequence[Callback] = (),
    description: str = "train",
) -> FitResult:
    """Trains ``model`` in place for ``steps`` steps (the step order is in the module docstring).

    Args:
        model: Put in train mode first, left in eval mode.
        batches: A callable returning ``(inputs, targets)`` per call, or an iterable of them.
        loss_fn: ``loss_fn(model(inputs), targets)`` -> scalar loss tensor.
        optimizer: Built by the caller over the parameters to train.
        steps: Number of optimizer steps.
        scheduler: Stepped once after every optimizer step.
        callbacks: Hooks, called in this order at every hook point.
        description: Label of the progress bar and the log line.

    Returns:
        Steps, the mean of the recent losses, the last loss and the wall time. The losses
        recorded are those minimised, i.e. including the callbacks' terms.

    Raises:
        ConfigError: ``steps`` is negative, or ``batches`` runs out before ``steps`` steps.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"{description}: steps must be a non-negative integer, got {steps!r}")
    next_batch = batches if callable(batches) else partial(next, iter(batches))
    model.train()
    for cb in callbacks:
        cb.on_train_begin(model)
    recent: deque[float] = deque(maxlen=RECENT_STEPS)
    start = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(description, total=steps, loss=float("nan"))
        for step in range(steps):
            try:
                inputs, targets = next_batch()
            except StopIteration:
                raise ConfigError(
                    f"{description}: batches ran out after {step} of {steps} steps"
                ) from None
            loss = loss_fn(model(inputs), targets)
            for cb in callbacks:
                loss = cb.loss(model, loss, inputs, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            for cb in callbacks:
                cb.after_step(model, step)
            recent.append(loss.item())
            bar.update(task, completed=step + 1, loss=sum(recent) / len(recent))
        for cb in callbacks:
            cb.on_train_end(model)
    model.eval()
    wall_s = time.perf_counter() - start
    mean_recent = sum(recent) / len(recent) if recent else float("nan")
    last = recent[-1] if recent else float("nan")
    log.info("%s: %d steps in %.1f s, final loss %.4f", description, steps, wall_s, mean_recent)
    return FitResult(steps=steps, mean_recent_loss=mean_recent, last_loss=last, wall_s=wall_s)
