"""hw: QONNX -> FINN dataflow -> per-layer RTL, without Vivado.

Contract: input is a QONNX file (plus the build config); output is a build directory holding
``intermediate/NN_<step>.onnx`` per step, ``step_times.json``, ``hw_report.json`` (cycles per
layer, resource estimates) and ``rtl/`` (every Verilog source and memory file the dataflow
partition needs, plus ``manifest.json`` describing the stream chain for sim/).

Only this package imports finn, and only lazily inside functions, so ``import hw`` stays cheap.
"""
