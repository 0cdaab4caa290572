"""Building the compiled RTL verification harness (the run side is :mod:`sim.harness`).

:func:`build_harness` compiles the stitched design (sources and top as
:func:`sim.rtl_sources.prepare_sources` returns them) together with ``sim/harness/
qphy_harness.cpp`` into one executable. Builds are cached by content (:mod:`sim.cache`: the
sources with staging paths normalised, the harness C++, the flags and the tool versions), so
the same design is compiled once per cache directory, across builds and checkouts.

Every tool runs in its own process group; on any exception (a time-out, Ctrl-C, SIGTERM turned
into an exception by the CLI, SystemExit) the group is terminated (SIGTERM, then SIGKILL) and the
build's temporary directory removed, so a killed build leaves the cache usable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hw.toolchain import compiler_version, find_tool, require_tool, tool_env, verilator_version
from qphy.errors import PipelineError
from sim import cache
from sim.verilator import COMPILE_OPT, DEFINES, VERILATOR_ARGS, SimulationTimeout, wait_limited

log = logging.getLogger(__name__)

#: The harness C++ main (part of the cache key).
HARNESS_CPP = Path(__file__).parent / "harness" / "qphy_harness.cpp"
#: Bump when the build recipe changes in a way the key would not see.
CACHE_VERSION = 2
#: clang++ (when chosen): measured 1.18x g++ -O1's simulation speed on the default FullyCon;
#: it needs libatomic, and any -march crashed it (see docs/verification.md).
CLANG_OPT = ["OPT_FAST=-O2", "OPT_SLOW=-O0", "OPT_GLOBAL=-O2"]
#: Parallel make jobs (the CI and dev machines have 2 cores).
MAKE_JOBS = 2
_X_FAST = ("--x-assign", "fast", "--x-initial", "fast")
#: The top's stream handshakes stay readable by the harness, which names the stalled streams
#: of a deadlock (only these few one-bit signals are kept public: the rest is optimised).
STREAMS_VLT = (
    "`verilator_config\n"
    'public_flat_rd -module "{top}" -var "*_tvalid"\n'
    'public_flat_rd -module "{top}" -var "*_tready"\n'
)
_BINARY = "Vtop"


class HarnessBuildError(PipelineError):
    """Verilator or the C++ build of the harness failed."""


class HarnessTimeout(SimulationTimeout):
    """A harness build or run exceeded its wall-clock limit."""


@dataclass(frozen=True)
class HarnessBuild:
    """A compiled harness. Usable as a path (``os.fspath`` gives the executable).

    Attributes:
        binary: The executable.
        build_s: Seconds spent building it now (0.0 when the cache already held it).
        cached: True when an earlier build was reused.
        key: The content hash naming the cache entry.
        x_random: Built with ``--x-assign unique --x-initial unique``: runs randomise every
            unknown from ``+verilator+seed``.
    """

    binary: Path
    build_s: float
    cached: bool
    key: str
    x_random: bool

    def __fspath__(self) -> str:
        return str(self.binary)


def _verilator_args(x_random: bool, threads: int) -> list[str]:
    args = list(VERILATOR_ARGS)
    for i in range(len(args) - 1):
        if args[i] in ("--x-assign", "--x-initial"):
            args[i + 1] = "unique" if x_random else "fast"
    if not x_random and not any(a in _X_FAST for a in args):
        args += list(_X_FAST)
    if x_random and "--x-assign" not in args:
        args += ["--x-assign", "unique", "--x-initial", "unique"]
    if threads > 1:
        args += ["--threads", str(threads)]
    return args


def choose_compiler(name: str = "g++") -> tuple[Path, list[str], list[str]]:
    """(compiler, make optimisation variables, extra Verilator args) for ``name``: ``g++``,
    ``clang++`` or ``auto`` (clang++ when installed, else g++)."""
    if name == "auto":
        name = "clang++" if find_tool("clang++") is not None else "g++"
    if name not in ("g++", "clang++"):
        raise HarnessBuildError(f"harness build: unknown compiler {name!r} (g++, clang++, auto)")
    cxx = require_tool(name)
    if name == "clang++":
        return cxx, list(CLANG_OPT), ["-LDFLAGS", "-latomic"]
    return cxx, list(COMPILE_OPT), []


def _run_tool(cmd: Sequence[str], cwd: Path, log_path: Path, deadline: float, env: dict) -> None:
    """Run one build command with its output in log_path; kill its process group on timeout."""
    name = Path(cmd[0]).name
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        rc = wait_limited(proc, max(1.0, deadline - time.monotonic()))
        if rc is None:
            raise HarnessTimeout(
                f"harness build: '{name}' exceeded the build's wall-clock limit (log in {log_path})"
            )
    if rc != 0:
        text = log_path.read_text(errors="replace")
        errors = [ln for ln in text.splitlines() if "error" in ln.lower()][:3]
        detail = "; ".join(errors) or text.strip().splitlines()[-1:] or ""
        raise HarnessBuildError(
            f"harness build: '{name}' failed with exit code {rc} ({detail}); log in {log_path}"
        )


def build_harness(
    sources: Sequence[Path],
    top: str,
    build_dir: Path,
    *,
    threads: int = 1,
    x_random: bool = False,
    timeout_s: float = 900.0,
    assertions: bool = True,
    compiler: str = "g++",
    max_cache_bytes: int = cache.DEFAULT_MAX_BYTES,
) -> HarnessBuild:
    """Compile the harness for a design, or reuse the cached executable of the same content.

    Args:
        sources: HDL sources in compile order (the top's file last), e.g. prepare_sources' list.
        top: The top module (ports ap_clk, ap_rst_n, s_axis_t*, m_axis_t*).
        build_dir: The cache directory; one entry ``<key[:16]>/`` per design and option set.
        threads: Verilator model threads (``--threads``); 1 is fastest for small designs.
        x_random: ``--x-assign unique --x-initial unique`` (unknowns randomised at run time
            from the run's seed) instead of Verilator's fast default.
        timeout_s: Wall-clock limit of the whole build.
        assertions: False builds with ``--no-assert`` (the RTL's assertions are skipped:
            1.12x faster simulation; keep one asserting run beside such bulk runs).
        compiler: ``g++``, ``clang++`` or ``auto`` (see :func:`choose_compiler`).
        max_cache_bytes: The cache is pruned to this size after a build (LRU).

    Returns:
        The build (``build_s`` 0.0 when cached). Raises ToolNotFound for a missing verilator,
        make or g++, HarnessBuildError when a tool fails, HarnessTimeout past the limit.
    """
    verilator = require_tool("verilator")
    make = require_tool("make")
    cxx, opt, cxx_args = choose_compiler(compiler)
    sources = [Path(s).resolve() for s in sources]
    if not sources:
        raise HarnessBuildError("harness build: no HDL sources given")
    for src in sources:
        if not src.is_file():
            raise HarnessBuildError(f"harness build: source {src} does not exist")
    vargs = _verilator_args(x_random, threads) + cxx_args
    if not assertions:
        vargs.append("--no-assert")
    defines = [f"-D{k}={v}" for k, v in DEFINES.items()]
    make_vars = [
        f"CXX={cxx}",
        f"LINK={cxx}",
        "CFG_CXXFLAGS_PCH_I=-include",
        f"PYTHON3={sys.executable}",
        *opt,
    ]
    vlt_text = STREAMS_VLT.format(top=top)
    # Tool versions, not paths, in the key (paths differ per checkout and venv).
    flags = [
        f"qphy-harness-{CACHE_VERSION}",
        *vargs,
        *defines,
        *opt,
        verilator_version().split(" ")[0],
        compiler_version(cxx),
        f"x={x_random}",
        vlt_text,
    ]
    key = cache.design_key(sources, top, flags, extra=[HARNESS_CPP.read_bytes()])
    build_dir = Path(build_dir).resolve()
    entry = build_dir / key[:16]
    binary = entry / _BINARY
    if binary.is_file() and (entry / cache.META).is_file():
        log.info("harness cache hit: %s", binary)
        cache.touch(entry)
        return HarnessBuild(binary, 0.0, True, key, x_random)

    t0 = time.monotonic()
    deadline = t0 + timeout_s
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = build_dir / f".{key[:16]}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    obj = tmp / "obj"
    obj.mkdir(parents=True)
    vlt = tmp / "streams.vlt"
    vlt.write_text(vlt_text)
    env = tool_env()
    try:
        _run_tool(
            [
                str(verilator),
                "--cc",
                "--exe",
                "-Mdir",
                str(obj),
                "--top-module",
                top,
                "--prefix",
                "Vtop",
                "-o",
                _BINARY,
                *vargs,
                *defines,
                f"-I{sources[0].parent}",
                str(HARNESS_CPP),
                str(vlt),
                *[str(s) for s in sources],
            ],
            tmp,
            tmp / "verilate.log",
            deadline,
            env,
        )
        _run_tool(
            [str(make), "-j", str(MAKE_JOBS), "-C", str(obj), "-f", "Vtop.mk", *make_vars],
            tmp,
            tmp / "make.log",
            deadline,
            env,
        )
        shutil.move(obj / _BINARY, tmp / _BINARY)
        shutil.rmtree(obj)
        build_s = time.monotonic() - t0
        meta = {
            "key": key,
            "top": top,
            "x_random": x_random,
            "threads": threads,
            "assertions": assertions,
            "compiler": compiler_version(cxx),
        }
        (tmp / "harness.json").write_text(json.dumps({**meta, "build_s": build_s}, indent=1))
        try:
            tmp.rename(entry)
        except OSError:  # another process published the same key first: use theirs
            if not (entry / _BINARY).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cache.prune(build_dir, max_cache_bytes, keep=entry)
    log.info("harness built in %.1f s: %s", build_s, binary)
    return HarnessBuild(binary, build_s, False, key, x_random)
