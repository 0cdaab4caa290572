"""Knowledge distillation as a pass of the one trainer: a small student learns from a teacher.

Contract: :class:`Distillation` is a :class:`quant.trainer.Callback` whose ``loss`` hook returns
``task_loss + alpha * mean((student_out - teacher_out) ** 2)`` for the step's inputs. The
teacher (e.g. the shipped 200-wide float FullyCon) is frozen: put in eval mode, its parameters'
``requires_grad`` switched off, and run under ``torch.no_grad()``, so it gets no gradient and
does not change. The student's output is not recomputed: a forward hook, registered for the
length of the fit, keeps the output of the step's own forward pass (a second student forward
would cost time and, for a QAT student, feed its activation-quantizer statistics twice).

Regression distillation: the detector's outputs are soft symbols trained with MSE, so the
teacher's outputs are matched with MSE (no temperature/softmax as for classifiers).
"""

from __future__ import annotations

import torch
from torch import nn

from qphy.errors import ConfigError, PipelineError
from quant.trainer import Callback, mse


class Distillation(Callback):
    """Adds ``alpha * MSE(student(x), teacher(x))`` to the task loss.

    Args:
        teacher: The larger trained model; frozen here (eval mode, no gradients).
        alpha: Weight of the distillation term (0 turns it off).

    Raises:
        ConfigError: ``alpha`` is negative or not finite.
    """

    def __init__(self, teacher: nn.Module, alpha: float = 1.0):
        if not (0.0 <= float(alpha) < float("inf")):
            raise ConfigError(f"distillation alpha must be finite and >= 0, got {alpha!r}")
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.alpha = float(alpha)
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._seen: tuple[torch.Tensor, torch.Tensor] | None = None

    def _keep(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self._seen = (args[0], output)

    def on_train_begin(self, model: nn.Module) -> None:
        self.teacher.eval()  # even if someone trained it meanwhile
        self._handle = model.register_forward_hook(self._keep)

    def on_train_end(self, model: nn.Module) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._seen = None

    def loss(
        self,
        model: nn.Module,
        loss: torch.Tensor,
        inputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        if self._seen is None or self._seen[0] is not inputs:
            raise PipelineError(
                "Distillation.loss: the student's forward pass on this step's inputs was not "
                "seen (use the callback inside quant.trainer.fit, or call model(inputs) after "
                "on_train_begin)"
            )
        student_out = self._seen[1]
        with torch.no_grad():
            teacher_out = self.teacher(inputs)
        return loss + self.alpha * mse(student_out, teacher_out)
