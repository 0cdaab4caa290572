"""Atomic file and directory writes: the one helper every stage uses.

A killed or failing run must never leave a truncated file or a half-built output directory
behind: files are written to a temporary sibling and renamed (``os.replace`` is atomic on one
file system); directories are built in a hidden sibling and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)  # mkstemp makes 0600; outputs are shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling to write ``path`` with any writer (torch.save, np.save); renamed onto
    ``path`` when the block succeeds, removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class StagedDir:
    """Build an output directory in a hidden sibling, then publish it in one rename.

    ``with StagedDir(out) as tmp: ...; staged.publish()``: leaving the block without
    :meth:`publish` (an exception) removes everything that was written.
    """

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir).resolve()
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(
            tempfile.mkdtemp(prefix=f".{self.out_dir.name}.tmp-", dir=self.out_dir.parent)
        )
        self.published = False

    def publish(self) -> Path:
        """Replace ``out_dir`` by the staged directory."""
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        self.path.rename(self.out_dir)
        self.published = True
        return self.out_dir

    def __enter__(self) -> StagedDir:
        return self

    def __exit__(self, *exc) -> None:
        if not self.published:
            shutil.rmtree(self.path, ignore_errors=True)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (manifests of bitstreams and board dirs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
