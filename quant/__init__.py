"""Stage 2, quant: Brevitas quantization-aware training, QONNX export and golden I/O.

Contract: takes a float model from ``models`` (and optionally its checkpoint), produces a QAT
model whose quantizers are chosen in :mod:`quant.recipes`, and exports an export directory:
``model.qonnx.onnx``, ``golden_in.npy``, ``golden_out.npy`` and ``export_report.json``. The
export is verified integer-exact against the Brevitas forward pass before it is written.
"""
