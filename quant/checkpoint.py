"""Checkpoint files: a state dict plus the metadata needed to rebuild the exact model."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from models.fullycon import FullyCon, FullyConShape
from qphy.errors import CheckpointError
from qphy.variants import Bits, parse_bits, variant_name
from quant.qat_fullycon import QuantFullyCon
from quant.recipes import Recipe

FORMAT = "qphy-checkpoint-1"
#: Checkpoints shipped with the package, produced by `qphy train` (see README).
SHIPPED_DIR = Path(__file__).parent / "checkpoints"


def default_path(arch: str, bits: Bits | None, channel: str) -> Path:
    """Shipped checkpoint of a variant, e.g. ``quant/checkpoints/fullycon_w4a4_fixed.pt``."""
    return SHIPPED_DIR / f"{variant_name(arch, bits)}_{channel}.pt"


def save(model: torch.nn.Module, path: Path, meta: dict) -> None:
    """Write atomically (temp file + rename), so a killed run leaves no truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "meta": meta, "state_dict": model.state_dict()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are shipped and shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fullycon_meta(shape: FullyConShape, bits: Bits | None, recipe: Recipe | None, **extra) -> dict:
    meta = {
        "arch": "fullycon",
        "variant": variant_name("fullycon", bits),
        "bits": bits.tag if bits else None,
        "shape": asdict(shape),
        "per_channel_weights": bool(recipe.per_channel_weights) if recipe else None,
    }
    meta.update(extra)
    return meta


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


def load_fullycon(path: Path, bits: Bits | None) -> tuple[torch.nn.Module, dict]:
    """Rebuild a float (bits=None) or QAT FullyCon from a checkpoint and check it fits."""
    path = Path(path)
    payload = read(path, f"qphy train detector --bits {bits.tag if bits else 'float'}")
    meta = payload["meta"]
    want = bits.tag if bits else None
    if meta.get("arch") != "fullycon" or meta.get("bits") != want:
        raise CheckpointError(
            f"{path} holds {meta.get('variant')}, not {variant_name('fullycon', bits)}"
        )
    shape = FullyConShape(**meta["shape"])
    if bits is None:
        model: torch.nn.Module = FullyCon(shape)
    else:
        recipe = Recipe(parse_bits(meta["bits"]), per_channel_weights=meta["per_channel_weights"])
        model = QuantFullyCon(recipe, shape)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit {meta['variant']}: {exc}") from exc
    model.eval()
    return model, meta
