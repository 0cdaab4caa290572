"""``qphy cache info|prune``: the compiled-harness cache (:mod:`sim.cache`), command line."""

from __future__ import annotations

import argparse
import json

from qphy.errors import ConfigError
from sim import cache


def cmd_cache(args: argparse.Namespace) -> int:
    root = cache.default_harness_cache()
    if args.action == "prune":
        if args.max_mb < 0:
            raise ConfigError(f"--max-mb must be >= 0, got {args.max_mb}")
        removed = cache.prune(root, int(args.max_mb * (1 << 20)))
        print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} from {root}")
    print(json.dumps(cache.info(root), indent=1))
    return 0


def add_cache_parser(sub) -> None:
    """Register ``cache`` on the ``qphy`` sub-command parser."""
    sp = sub.add_parser("cache", help="compiled-harness cache: where, how big; prune it (LRU)")
    sp.add_argument("action", choices=["info", "prune"])
    sp.add_argument(
        "--max-mb",
        type=float,
        default=cache.DEFAULT_MAX_BYTES / (1 << 20),
        help="prune: least recently used entries go until the cache fits (0: empty it)",
    )
    sp.set_defaults(func=cmd_cache)
