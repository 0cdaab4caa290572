"""sim: stitch the per-layer RTL from hw/ into one AXI-stream top and verify it bit-exactly.

Contract: input is a hw build directory (``rtl/manifest.json``, ``rtl/src``, ``rtl/mem``) and an
export directory (golden float input/output); output is ``report.json`` with the verdict,
latency and throughput, plus the Verilator build and per-run logs. sim/ never imports finn.
"""
