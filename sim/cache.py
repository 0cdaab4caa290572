"""The compiled-harness cache: where it lives, content keys, least-recently-used pruning.

* Location: :func:`default_harness_cache` (``$QPHY_CACHE_DIR/harness``, default
  ``~/.cache/qphy/harness``; the one environment read is in :mod:`hw.toolchain`).
* Keys (:func:`design_key`): the sources' names and contents with absolute paths normalised
  (FINN writes the random staging path of every build into each memstream wrapper's default
  INIT_FILE, which the stitched top overrides with ``mem/...``), the harness C++, the flags and
  the tool *versions*, never tool paths: the same design hits across builds and checkouts.
* Entries are directories ``<key[:16]>/`` holding the executable and ``harness.json``; a build
  writes ``.<key[:16]>.tmp-<pid>/`` and renames it, so a killed build leaves only a temporary,
  which :func:`prune` removes once its process is gone.
* :func:`prune` removes the least recently used entries (a hit touches ``harness.json``) until
  the cache fits ``max_bytes``; ``qphy cache info|prune`` reports and prunes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hw.toolchain import qphy_cache_dir

#: Size bound applied after every harness build (``qphy cache prune --max-mb`` for another).
DEFAULT_MAX_BYTES = 4 << 30
#: The file whose mtime records an entry's last use.
META = "harness.json"

_TMP_RE = re.compile(r"^\.([0-9a-f]{16})\.tmp-(\d+)$")
# A double-quoted absolute path in HDL (e.g. INIT_FILE = "/tmp/.../memblock.dat").
_ABS_PATH_RE = re.compile(rb'"(/[^"\n]*/)([^"/\n]*)"')


def default_harness_cache() -> Path:
    """The default cache directory of compiled harnesses."""
    return qphy_cache_dir() / "harness"


def normalise_source(text: bytes) -> bytes:
    """``text`` with every quoted absolute path reduced to its file name: the staging and
    code-generation folders FINN bakes in differ per build but do not change the design."""
    return _ABS_PATH_RE.sub(rb'"<abs>/\2"', text)


def design_key(
    sources: Sequence[Path], top: str, flags: Sequence[str], extra: Iterable[bytes] = ()
) -> str:
    """SHA-256 of the design and its build recipe (see the module doc)."""
    h = hashlib.sha256()
    h.update(f"{top}\0".encode())
    h.update("\0".join(flags).encode() + b"\0")
    for blob in extra:
        h.update(hashlib.sha256(blob).digest())
    for src in sources:
        h.update(Path(src).name.encode() + b"\0")
        h.update(hashlib.sha256(normalise_source(Path(src).read_bytes())).digest())
    return h.hexdigest()


def touch(entry: Path) -> None:
    """Record a use of ``entry`` (LRU order)."""
    try:
        os.utime(entry / META)
    except OSError:
        pass  # a concurrent prune removed it; the caller already holds the binary path


@dataclass(frozen=True)
class Entry:
    """One cached harness: its directory, bytes on disk and last use (epoch seconds)."""

    path: Path
    size_bytes: int
    last_used: float


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).lstat().st_size
            except OSError:
                pass
    return total


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def entries(root: Path) -> list[Entry]:
    """Complete entries of the cache, least recently used first."""
    found = []
    root = Path(root)
    if not root.is_dir():
        return found
    for d in root.iterdir():
        meta = d / META
        if d.is_dir() and not d.name.startswith(".") and meta.is_file():
            found.append(Entry(d, _size(d), meta.stat().st_mtime))
    return sorted(found, key=lambda e: e.last_used)


def stale_temporaries(root: Path) -> list[Path]:
    """Temporaries of builds whose process is gone (killed builds)."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        m = _TMP_RE.match(d.name)
        if m and not _pid_alive(int(m.group(2))):
            out.append(d)
    return out


def info(root: Path) -> dict:
    """Where the cache is, how many entries and bytes, and the stale temporaries."""
    es = entries(root)
    return {
        "path": str(root),
        "entries": len(es),
        "size_bytes": sum(e.size_bytes for e in es),
        "stale_temporaries": len(stale_temporaries(root)),
        "oldest_use": time.strftime("%Y-%m-%d %H:%M", time.localtime(es[0].last_used))
        if es
        else None,
    }


def prune(root: Path, max_bytes: int = DEFAULT_MAX_BYTES, keep: Path | None = None) -> list[Path]:
    """Remove stale temporaries, then least recently used entries until the cache holds at
    most ``max_bytes`` (``keep``, the entry just built or used, is never removed).
    Returns the removed paths."""
    removed = []
    for tmp in stale_temporaries(root):
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    es = entries(root)
    total = sum(e.size_bytes for e in es)
    for e in es:
        if total <= max_bytes:
            break
        if keep is not None and e.path.resolve() == Path(keep).resolve():
            continue
        # Rename first: a concurrent reader either still finds the whole entry or none.
        doomed = e.path.with_name(f".{e.path.name}.tmp-{os.getpid()}")
        try:
            e.path.rename(doomed)
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        total -= e.size_bytes
        removed.append(e.path)
    return removed
