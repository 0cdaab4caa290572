"""qphy: quantized physical-layer neural networks, from QAT to verified RTL.

The pipeline is spread over four stage packages that import one way only:
``models`` (torch modules, data, classical baselines) -> ``quant`` (Brevitas QAT, QONNX export,
golden I/O) -> ``hw`` (FINN build steps; the only importer of finn) -> ``sim`` (RTL stitching,
Verilator + cocotb verdict). This package holds what all of them share: the error hierarchy,
variant names and the command line.
"""

__version__ = "0.1.0"
