"""The Target registry: what a network must provide to go through the flow (torch-free module).

A target (``detector``, ``csi-encoder``, or your own) is registered once; the CLI and the flow
dispatch through it and never branch on a target's name. The flow does the rest: verified
QONNX export, FINN build, RTL verdict, report. To add one::

    @register
    class MyTarget(Target):
        name = "my-net"
        def config(self, bits, **options): ...          # a frozen config with .name (variant)
        def load_or_train(self, cfg, ckpt_dir=None, retrain=False): ...  # the torch model
        def golden_inputs(self, cfg, model, n): ...    # (n, *input_shape) float32 model inputs

Everything else has a default: the part of the model that runs on the FPGA (``hw_model``), the
host's pre-processing and hard decisions (``host``), hw/sim defaults (``hw_defaults``), and
``train``/``evaluate``/``report_extras``/``verdict_figures`` for the CLI. Each network family
(``models/<family>/``) registers its one target; the families are discovered by scanning
``models/`` on first use (no list to edit).
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from qphy import defaults
from qphy.contracts import HostExtras
from qphy.errors import ConfigError
from qphy.variants import Bits


@dataclass(frozen=True)
class Option:
    """A target's own command-line option, mapped onto its config field ``dest``."""

    flag: str
    dest: str
    type: Callable[[str], Any] = str
    choices: Sequence[Any] | None = None
    help: str = ""


@dataclass(frozen=True)
class HwDefaults:
    """A target's defaults for the hw and sim stages (every one overridable on the CLI)."""

    fpga_part: str = defaults.FPGA_PART
    target_cycles: int = defaults.TARGET_CYCLES
    folding_preference: str = "resources"
    fifo_sizing: str = "frame"
    budget_us: float = defaults.BUDGET_US
    vectors: int = defaults.SIM_VECTORS


class Target(abc.ABC):
    """One network family the flow can take from training to a verdict."""

    #: The CLI name (``qphy build <name>``).
    name: ClassVar[str]
    help: ClassVar[str] = ""
    #: The target's own CLI options (beyond --bits, --checkpoint-dir and the build options).
    options: ClassVar[tuple[Option, ...]] = ()

    @abc.abstractmethod
    def config(self, bits: Bits | None, **options: Any) -> Any:
        """The frozen config of one variant; ``options`` holds only the options the user gave.
        Raise ConfigError for a bad value. The config's ``name`` is the variant name, unique
        per distinguishing option (it names checkpoints, build dirs and reports)."""

    @abc.abstractmethod
    def load_or_train(self, cfg: Any, ckpt_dir: Path | None = None, retrain: bool = False) -> Any:
        """The (torch) model of ``cfg`` from its checkpoint, training it when absent or asked."""

    @abc.abstractmethod
    def golden_inputs(self, cfg: Any, model: Any, n: int) -> Any:
        """``n`` float32 model inputs ``(n, *input_shape)`` for the golden set; some should
        saturate the input quantizer."""

    def hw_model(self, model: Any) -> Any:
        """The part of ``model`` that becomes hardware (default: all of it)."""
        return model

    def host(self, cfg: Any) -> HostExtras:
        return HostExtras()

    def hw_defaults(self, cfg: Any) -> HwDefaults:
        return HwDefaults()

    def train(self, cfg: Any, ckpt_dir: Path | None = None) -> str:
        """Train (or re-train) ``cfg`` and save its checkpoint; returns a one-line summary."""
        self.load_or_train(cfg, ckpt_dir, retrain=True)
        return f"trained {cfg.name}"

    def evaluate(self, cfg: Any, out_dir: Path, ckpt_dir: Path | None = None) -> str:
        """Measure the variant's quality into ``out_dir``; returns a summary for the terminal."""
        raise ConfigError(f"the {self.name} target has no evaluation")

    def report_extras(self, cfg: Any, ckpt_dir: Path | None = None) -> dict:
        """Figures of the target's own added to report.json (e.g. NMSE)."""
        return {}

    def verdict_figures(self, extras: dict) -> str:
        """The target's own figures for the one-line verdict, from its ``report_extras`` as
        stored in the report (e.g. the CSI encoder's NMSE); "" for none."""
        return ""


_REGISTRY: dict[str, Target] = {}


def register(cls: type[Target]) -> type[Target]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"target '{cls.name}' registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


#: The package whose sub-packages are the network families (``models/<family>/``).
FAMILIES_PACKAGE = "models"


def _load_builtin() -> None:
    # By name, not by an import statement: the registry sits in the kernel and must not import
    # the families that import it. models.families imports every family folder (each registers
    # its Target), and an import error in one stops here, loudly.
    importlib.import_module(f"{FAMILIES_PACKAGE}.families").discover()


def target_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get(name: str) -> Target:
    """The registered target ``name``; ConfigError listing the known ones otherwise."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown target '{name}'; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
