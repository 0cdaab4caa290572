"""The on-disk cache of CSI sets: generated once per config, loaded by its content hash.

Contract: :func:`load_or_generate` returns the :class:`~models.csi.data.CsiDataset` of a
:class:`~models.csi.data.CsiDataConfig`, from ``cache_dir`` when a matching file is there,
else generated (:func:`models.csi.channel.generate`) and written atomically. It sits above
both the data types and the generator, so neither imports the other in a circle.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from pathlib import Path

import numpy as np

from models.csi.channel import generate
from models.csi.data import DEFAULT_CACHE_DIR, CsiDataConfig, CsiDataset, CsiSplits, split
from qphy.fsutil import atomic_path

log = logging.getLogger(__name__)


def _save_atomic(ds: CsiDataset, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, x=ds.x, peak=ds.peak, config=json.dumps(ds.config.to_json()))


def _load(path: Path, cfg: CsiDataConfig) -> CsiDataset | None:
    try:
        with np.load(path) as data:
            stored = json.loads(str(data["config"]))
            x, peak = data["x"], data["peak"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("ignoring unreadable CSI cache %s (%s)", path, exc)
        return None
    want = (cfg.n_samples, 2, cfg.n_delay_taps, cfg.n_antennas)
    if stored != cfg.to_json() or x.shape != want or peak.shape != (cfg.n_samples,):
        log.warning("ignoring CSI cache %s: it does not match the config", path)
        return None
    return CsiDataset(x, peak, cfg)


def load_or_generate(
    cfg: CsiDataConfig, cache_dir: Path | str = DEFAULT_CACHE_DIR, show_progress: bool = True
) -> CsiDataset:
    """The set of ``cfg``: from ``cache_dir`` when present, else generated and cached.

    Args:
        cfg: Generator config.
        cache_dir: Cache directory (created if needed); relative paths are relative to the
            current working directory.
        show_progress: Show a rich progress bar while generating.
    """
    path = cfg.cache_path(Path(cache_dir))
    if path.exists():
        ds = _load(path, cfg)
        if ds is not None:
            log.info("CSI set loaded from %s", path)
            return ds
    start = time.perf_counter()
    ds = generate(cfg, show_progress=show_progress)
    log.info(
        "CSI set %s: %d samples in %.1f s -> %s",
        cfg.scenario.value, len(ds), time.perf_counter() - start, path,
    )  # fmt: skip
    _save_atomic(ds, path)
    return ds


def load_splits(
    cfg: CsiDataConfig,
    cache_dir: Path | str = DEFAULT_CACHE_DIR,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    show_progress: bool = True,
) -> CsiSplits:
    """:func:`load_or_generate` then :func:`split`."""
    return split(load_or_generate(cfg, cache_dir, show_progress), fractions)
