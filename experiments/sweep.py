"""Where an experiment's grid points run: in this process (default) or as Ray tasks on a cluster
(``qphy experiment NAME --ray ADDRESS``).

Contract: every point is ``(key, settings, compute)`` with ``compute() -> dict`` independent of
the others (a point that needs a shared model trains it itself when it runs remotely). The
driver owns the cache: a point whose ``out_dir/points/<key>.json`` holds the same settings is
reused without running; every computed point is written there the moment its result arrives,
so an interrupted sweep resumes where it stopped, locally or on the cluster. Results come back
in grid order whatever order the tasks finish in.

Ray: ``ADDRESS`` is what ``ray.init`` takes (``auto`` for the cluster this machine belongs to,
``ray://head:10001`` for a remote one, ``local`` to start a throw-away cluster on this machine).
Each task asks for one CPU and runs torch with one thread. The cluster's nodes need the same
qphy installation (the Docker image, or ``make setup`` on each node): the tasks import
``quant``/``models`` there.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console

from qphy.errors import ConfigError
from qphy.fsutil import atomic_write_json

Point = tuple[str, dict, Callable[[], dict]]

_RAY_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("ray", default=None)


@contextlib.contextmanager
def ray_cluster(address: str | None) -> Iterator[None]:
    """Within this block, :func:`run_points` sends points to the Ray cluster at ``address``
    (None: run them here). Connects once; disconnects on exit.

    Raises:
        ConfigError: Ray cannot connect to ``address``.
    """
    if address is None:
        yield
        return
    import ray  # noqa: PLC0415 - only sweeps on a cluster need it

    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot connect to the Ray cluster at '{address}': {exc}") from exc
    token = _RAY_ADDRESS.set(address)
    try:
        yield
    finally:
        _RAY_ADDRESS.reset(token)
        ray.shutdown()


def _cache_path(out_dir: Path, key: str) -> Path:
    return out_dir / "points" / f"{key}.json"


def _cached(out_dir: Path, key: str, settings: dict) -> dict | None:
    path = _cache_path(out_dir, key)
    if not path.is_file():
        return None
    try:
        cached = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if isinstance(cached, dict) and cached.get("settings") == settings:
        return cached["result"]
    return None


def _store(out_dir: Path, key: str, settings: dict, result: dict) -> None:
    atomic_write_json(
        _cache_path(out_dir, key), {"key": key, "settings": settings, "result": result}
    )


def _timed(compute: Callable[[], dict]) -> dict:
    """Runs one point (here or in a Ray worker) with one torch thread; adds ``wall_s``."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    result = compute()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def run_points(
    name: str, out_dir: Path, points: list[Point], console: Console
) -> tuple[list[dict], list[str]]:
    """Each point from its cache or computed (here, or on the Ray cluster of
    :func:`ray_cluster`); returns the rows ``{"key": ..., **result}`` in grid order and the keys
    computed this run."""
    out_dir = Path(out_dir)
    results: dict[int, dict] = {}
    todo: list[int] = []
    for i, (key, settings, _) in enumerate(points):
        hit = _cached(out_dir, key, settings)
        if hit is None:
            if _cache_path(out_dir, key).is_file():
                console.print(f"  [yellow]{key}: cached with other settings, recomputing[/yellow]")
            todo.append(i)
        else:
            console.print(f"  [dim]{name} {key}: cached[/dim]")
            results[i] = hit
    if _RAY_ADDRESS.get() is None:
        for n, i in enumerate(todo):
            key, settings, compute = points[i]
            console.rule(f"{name} [{n + 1}/{len(todo)} to compute] {key}")
            results[i] = _timed(compute)
            _store(out_dir, key, settings, results[i])
    else:
        _run_on_ray(name, out_dir, points, todo, results, console)
    rows = [{"key": points[i][0], **results[i]} for i in range(len(points))]
    return rows, [points[i][0] for i in todo]


def _run_on_ray(
    name: str,
    out_dir: Path,
    points: list[Point],
    todo: list[int],
    results: dict[int, dict],
    console: Console,
) -> None:
    import ray  # noqa: PLC0415

    task = ray.remote(num_cpus=1)(_timed)
    pending = {task.remote(points[i][2]): i for i in todo}
    console.print(f"{name}: {len(pending)} points sent to Ray at {_RAY_ADDRESS.get()}")
    done_n = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(ready[0])
        key, settings, _ = points[i]
        results[i] = ray.get(ready[0])
        _store(out_dir, key, settings, results[i])
        done_n += 1
        console.print(
            f"  {name} [{done_n}/{len(todo)}] {key}: done on Ray in {results[i]['wall_s']} s"
        )
