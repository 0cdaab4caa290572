"""A registry ``name -> constructor`` for the float networks of every family."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from models.families import discover
from qphy.errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class/function decorator that registers a constructor under ``name``."""

    def deco(ctor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' registered twice")
        _REGISTRY[name] = ctor
        return ctor

    return deco


def model_names() -> list[str]:
    """Sorted names of all registered models."""
    _load_builtin()
    return sorted(_REGISTRY)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; unknown names raise ConfigError listing the known ones."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model '{name}'; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)


def _load_builtin() -> None:
    # Importing the families runs their @register decorators (found by scanning, not listed).
    discover()
