"""Every default of qphy that more than one module needs, in one place.

Target-specific defaults (a CSI encoder's part and folding, its 8.9 us budget) live with the
target's registration (``models/<family>/target.py``) and reference these where they share them.
"""

from __future__ import annotations

from pathlib import Path

#: The product owner's latency budget (a 5G NR slot at 15 kHz subcarrier spacing).
BUDGET_US = 1000.0
#: One OFDM symbol at 120 kHz subcarrier spacing: the strict budget of the CSI encoder.
SYMBOL_120KHZ_US = 8.9
#: Clock the RTL is generated for and cycles are converted to time at.
CLOCK_MHZ = 200.0
#: A ZCU104-class small part; the detector's default.
FPGA_PART = "xczu3eg-sbva484-1-e"
#: Folding target: cycles per frame of the slowest layer.
TARGET_CYCLES = 200
#: Share of each resource of the part that ``--optimize`` may use (by the synth model).
OPTIMIZE_MARGIN = 0.85
#: Vectors checked in RTL when neither the user nor the target says otherwise.
SIM_VECTORS = 1000
#: Golden vectors written by ``qphy export``.
EXPORT_VECTORS = 2000
#: Extra golden inputs (user QONNX files, runs longer than the export) are Gaussian; every
#: second one is scaled by this so that it saturates the input quantizer.
SATURATE_SCALE = 64.0
#: Seed of generated vectors and of the backpressure patterns.
SIM_SEED = 1
#: Generated data sets are cached here (absolute: the checkout's .cache, never the cwd's).
CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache"
