"""Atomic file and directory writes: the one helper every stage uses.

A killed or failing run must never leave a truncated file or a half-built output directory
behind: files are written to a temporary sibling and renamed (``os.replace`` is atomic on one
file system); directories are built in a hidden sibling and renamed into place when complete.

A user's files are never deleted or overwritten: an output folder (``--out``) must be new, empty,
or a previous qphy output (it carries :data:`MARKER`); see :func:`check_out_dir`.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
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


#: The file that marks a folder as a qphy output (JSON: which command wrote it, and when). Only a
#: folder holding it may be replaced; any other non-empty folder is the user's and is never touched.
MARKER = ".qphy-output.json"


def _marker_kind(folder: Path) -> str | None:
    """The kind recorded in ``folder``'s marker, or None when it holds no (readable) marker."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    kind = data.get("qphy_output") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def write_marker(folder: Path, kind: str) -> None:
    """Mark ``folder`` as a qphy output of ``kind`` (``build``, ``export``, ``evaluate``, ...)."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_json(Path(folder) / MARKER, {"qphy_output": kind, "created_utc": created})


def check_out_dir(out: Path, kind: str, inputs: Sequence[Path] = ()) -> Path:
    """Check that ``out`` may receive a qphy output of ``kind``; returns its absolute path.

    Allowed: a missing path (created later), an empty folder, or a folder that holds a previous
    qphy output of the same kind (its marker). Refused with a ConfigError naming the path, before
    any work: a file, a symbolic link, a non-empty folder without the marker, the working
    directory or any folder above it, a folder holding one of ``inputs`` (the model, checkpoints),
    and a place that cannot be written.
    """
    from qphy.errors import ConfigError  # noqa: PLC0415 - fsutil stays import-light

    given = Path(out)
    if given.is_symlink():
        raise ConfigError(f"--out {given}: is a symbolic link; give the folder itself")
    target = given.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise ConfigError(
            f"--out {given}: is the working directory or a folder above it; qphy never replaces "
            "it: name a new folder, e.g. --out build/NAME"
        )
    for src in inputs:
        src_path = Path(src).resolve()
        if src_path == target:
            raise ConfigError(f"--out {given}: is the input {src} itself; name a new folder")
        if target in src_path.parents:
            raise ConfigError(f"--out {given}: holds the input {src}; name a new folder")
    if target.exists():
        if not target.is_dir():
            raise ConfigError(f"--out {given}: is a file, not a folder")
        if any(target.iterdir()):
            owner = _marker_kind(target)
            if owner is None:
                raise ConfigError(
                    f"--out {given}: the folder is not empty and is not a qphy output (no "
                    f"{MARKER}); qphy replaces only its own outputs: name a new or empty folder"
                )
            if owner != kind:
                raise ConfigError(
                    f"--out {given}: holds a qphy {owner} output, not a {kind} output; name "
                    "another folder"
                )
    anc = target.parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(f"--out {given}: {anc} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {given}: cannot write in {anc} (permission denied)")
    return target


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, deepest first (to undo on failure)."""
    missing = []
    p = Path(folder)
    while not p.exists():
        missing.append(p)
        p = p.parent
    Path(folder).mkdir(parents=True, exist_ok=True)
    return missing


def _remove_if_empty(folders: Sequence[Path]) -> None:
    for f in folders:
        with contextlib.suppress(OSError):
            f.rmdir()


class OutputLock:
    """An exclusive lock on one output path, so two commands never write the same ``--out``.

    A hidden ``.NAME.qphy-lock`` beside the output, held with ``flock`` (released by the kernel
    if the process dies) and removed on release. The second command fails at once with a
    ConfigError naming the holder's pid.
    """

    def __init__(self, target: Path):
        self.target = Path(target)
        self.path = self.target.parent / f".{self.target.name}.qphy-lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        from qphy.errors import ConfigError  # noqa: PLC0415

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ConfigError(
                    f"--out {self.target}: another qphy process (pid {holder}) is writing it; "
                    "wait for it to finish or name another folder"
                ) from None
            # The holder may have removed the file between our open and our lock: retry then.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self.fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None


def _claim(out: Path, kind: str, inputs: Sequence[Path]) -> tuple[Path, list[Path], OutputLock]:
    """Check ``out``, create its missing parents and lock it; on failure undo the parents.

    Returns ``(target, created parents, held lock)``: the start shared by :class:`StagedDir`
    and :func:`claimed_dir`.
    """
    target = check_out_dir(out, kind, inputs)
    created = _make_parents(target.parent)
    lock = OutputLock(target)
    try:
        lock.acquire()
    except BaseException:
        _remove_if_empty(created)
        raise
    return target, created, lock


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False if the
    system or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


class StagedDir:
    """Build an output directory in a hidden sibling, then publish it in one rename.

    ``with StagedDir(out, "build") as staged: ...; staged.publish()``: the path is checked first
    (:func:`check_out_dir`) and locked for the whole block; leaving the block without
    :meth:`publish` (an exception, a signal) removes everything that was written, including
    parent folders it created. Publishing replaces a previous qphy output of the same kind as a
    whole and atomically (an exchange of the two folders), never anything else.
    """

    def __init__(self, out_dir: Path, kind: str = "output", inputs: Sequence[Path] = ()):
        self.kind = kind
        self.inputs = tuple(inputs)
        self.out_dir, self._created, self.lock = _claim(out_dir, kind, self.inputs)
        try:
            self.path = Path(
                tempfile.mkdtemp(prefix=f".{self.out_dir.name}.tmp-", dir=self.out_dir.parent)
            )
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.path, 0o777 & ~umask)  # mkdtemp makes 0700; outputs are shared
            write_marker(self.path, kind)
        except BaseException:
            self.lock.release()
            _remove_if_empty(self._created)
            raise
        self.published = False

    def publish(self) -> Path:
        """Put the staged directory at ``out_dir`` (replacing a previous output of its kind)."""
        # Checked again: the folder may have been changed while the build ran.
        check_out_dir(self.out_dir, self.kind, self.inputs)
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            if _exchange(self.path, self.out_dir):
                shutil.rmtree(self.path)  # now the previous output
            else:
                old = Path(
                    tempfile.mkdtemp(prefix=f".{self.out_dir.name}.old-", dir=self.out_dir.parent)
                )
                self.out_dir.rename(old / "x")
                self.path.rename(self.out_dir)
                shutil.rmtree(old)
        else:
            self.path.rename(self.out_dir)  # onto a missing path or an empty folder
        self.published = True
        self.lock.release()
        return self.out_dir

    def __enter__(self) -> StagedDir:
        return self

    def __exit__(self, *exc) -> None:
        if not self.published:
            shutil.rmtree(self.path, ignore_errors=True)
            self.lock.release()
            _remove_if_empty(self._created)


@contextlib.contextmanager
def claimed_dir(
    out_dir: Path, kind: str, inputs: Sequence[Path] = (), keep_on_failure: bool = False
) -> Iterator[Path]:
    """An output folder written in place (evaluation results, resumable experiments).

    Checked and locked as :class:`StagedDir`, created if missing and marked as a qphy output.
    On failure, a folder this call created (or filled from empty) is removed again unless
    ``keep_on_failure`` (an experiment's finished points stay, to resume); a previous output is
    left as it is.
    """
    target, created, lock = _claim(out_dir, kind, inputs)
    fresh = not target.exists()
    was_empty = not fresh and not any(target.iterdir())
    ok = False
    try:
        target.mkdir(exist_ok=True)
        write_marker(target, kind)
        yield target
        ok = True
    finally:
        if not ok and not keep_on_failure:
            if fresh:
                shutil.rmtree(target, ignore_errors=True)
            elif was_empty:
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        lock.release()
        if not ok and not keep_on_failure:
            _remove_if_empty(created)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (manifests of bitstreams and board dirs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
