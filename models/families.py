"""Discovery of the network families: every sub-package of ``models/`` is one.

Importing a family registers what it provides (its float networks in :mod:`models.registry`,
its Target in :mod:`qphy.targets`). Unlike plug-in loaders that print a warning and go on, an
import error in a family is raised here, naming the family: a broken family must never vanish
silently from ``qphy build``'s list.
"""

from __future__ import annotations

import importlib
import pkgutil

import models


def families() -> list[str]:
    """Names of the family packages under ``models/`` (sorted); new folders count at once."""
    return sorted(m.name for m in pkgutil.iter_modules(models.__path__) if m.ispkg)


def discover() -> list[str]:
    """Import every family (a no-op for those already imported); returns their names.

    Raises:
        ImportError: A family failed to import; the message names it and the cause.
    """
    names = families()
    for name in names:
        try:
            importlib.import_module(f"models.{name}")
        except ImportError as exc:
            raise ImportError(f"network family models.{name} failed to import: {exc}") from exc
    return names
