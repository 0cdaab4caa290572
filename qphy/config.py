"""What every stage's config loader shares."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from qphy.errors import ConfigError


def reject_unknown_keys(cls: type, values: Mapping[str, Any], what: str) -> None:
    """Raise ConfigError naming every key of ``values`` that is not a field of dataclass ``cls``."""
    known = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what} key(s) {unknown}; known: {known}")
