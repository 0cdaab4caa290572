"""The deployment driver: the built accelerator on a PYNQ board, or on its RTL simulation.

Contract: input is a build directory ``OUT`` (``qphy build``) or a board directory
(``qphy-board pack OUT BITSTREAM_DIR --out BOARD_DIR``): manifest, golden vectors, the verdict,
and for the board the ``.bit``/``.hwh``. Output is ``board_report.json``: a
:class:`~qphy.contracts.Report` with the verdict's keys (bit-exactness on the golden vectors,
latency, throughput) plus the backend's figures (latency distribution, power idle/load, energy
per inference).

One :class:`~bitstreams.driver.accelerator.Accelerator` interface, two backends:
:class:`~bitstreams.driver.pynq_backend.PynqBackend` (pynq: Overlay, allocate, AXI DMA, PMBus
rails) and :class:`~bitstreams.driver.sim_backend.SimBackend` (the Verilator harness). Both move
the same uint8 beat buffers, packed and unpacked by :mod:`qphy.host`.

Importing this package needs numpy and qphy's pure-Python modules only (contracts, host, errors,
variants, fsutil): never torch, brevitas, qonnx, finn or onnx; pynq, hw/ and sim/ are imported
when a backend is opened.
"""

from bitstreams.driver.accelerator import (
    Accelerator,
    LatencyFigures,
    PowerFigures,
    ThroughputFigures,
)
from bitstreams.driver.files import (
    BOARD_REPORT,
    PYTHON_FILES,
    DeployFiles,
    Vectors,
    load_vectors,
    locate,
    pack_board_dir,
)
from bitstreams.driver.pynq_backend import PynqBackend, import_pynq
from bitstreams.driver.run import DriverConfig, drive, open_backend, run_driver
from bitstreams.driver.sim_backend import SimBackend

__all__ = [
    "BOARD_REPORT",
    "PYTHON_FILES",
    "Accelerator",
    "DeployFiles",
    "DriverConfig",
    "LatencyFigures",
    "PowerFigures",
    "PynqBackend",
    "SimBackend",
    "ThroughputFigures",
    "Vectors",
    "drive",
    "import_pynq",
    "load_vectors",
    "locate",
    "open_backend",
    "pack_board_dir",
    "run_driver",
]
