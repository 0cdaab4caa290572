"""Checkpoint files: a state dict plus the metadata needed to rebuild the exact model (any
network: each family writes its own metadata and rebuilds its own modules)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from qphy.errors import CheckpointError
from qphy.fsutil import atomic_path

FORMAT = "qphy-checkpoint-1"
#: Checkpoints shipped with the package, produced by `qphy train` (see README). Every family
#: finds its shipped variants here through this one constant (``path_for``). The store is DATA,
#: not code: it ships in the wheel as quant's package data, and it stays in this folder (90 MB
#: of .pt files) because moving it would rewrite every file in the history's diff; a family
#: folder holds code only.
SHIPPED_DIR = Path(__file__).parent / "checkpoints"
T = TypeVar("T")


def path_for(variant: str, ckpt_dir: Path | None = None) -> Path:
    """The checkpoint of a variant: ``<ckpt_dir or the shipped dir>/<variant>.pt``; variant
    names carry every distinguishing option (e.g. ``fullycon_w4a4_fixed``)."""
    return Path(ckpt_dir or SHIPPED_DIR) / f"{variant}.pt"


def load_or_train(
    variant: str,
    ckpt_dir: Path | None,
    load: Callable[[Path], T],
    train: Callable[[Path], T],
    retrain: bool = False,
) -> T:
    """``load(path)`` of the variant's checkpoint, or ``train(path)`` (which saves it) when there
    is none or ``retrain``. A corrupt or foreign file is never trained over silently."""
    path = path_for(variant, ckpt_dir)
    if retrain or not path.is_file():
        return train(path)
    return load(path)


def save(model: torch.nn.Module, path: Path, meta: dict) -> None:
    """Write atomically (temp file + rename), so a killed run leaves no truncated checkpoint."""
    payload = {"format": FORMAT, "meta": meta, "state_dict": model.state_dict()}
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def read(path: Path, train_command: str) -> dict:
    """The payload (format, meta, state_dict) of a checkpoint file written by :func:`save`.

    Raises:
        CheckpointError: No such file (naming ``train_command``, which makes it), unreadable,
            or not a qphy checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one with `{train_command}`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a qphy checkpoint (format {FORMAT} expected)")
    return payload


def load_state(model: torch.nn.Module, payload: dict, path: Path, variant: str) -> None:
    """Load ``payload``'s state dict into ``model`` (then eval mode); a state that does not fit
    is a CheckpointError naming the file and the variant."""
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit {variant}: {exc}") from exc
    model.eval()
