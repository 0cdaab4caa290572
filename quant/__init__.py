"""The generic QAT and compression library: it names no network.

Contract: :mod:`quant.trainer` (the one ``fit``, with callbacks for regularisers, masks and
distillation), :mod:`quant.recipes` (the Brevitas quantizers, chosen in one module),
:mod:`quant.export` (QONNX export verified integer-exact against the Brevitas forward pass, and
the golden I/O: ``model.qonnx.onnx``, ``golden_in.npy``, ``golden_out.npy``,
``export_report.json``), :mod:`quant.checkpoint` (the checkpoint format and the shipped store)
and :mod:`quant.compress` (compression passes for any model, and their accounting). The network
families (``models/<family>``) build on it; it imports none of them (tests/test_imports.py).
"""
