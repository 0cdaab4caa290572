"""bitstreams: Vivado recipes per model x board, from a built hw directory to a bitstream.

Contract: input is a hw build directory (``rtl/src`` with the stitched ``qphy_dataflow_top``,
``rtl/mem``, ``rtl/manifest.json``); output is a self-contained directory with the Vivado TCL
flows (out-of-context synthesis of the accelerator; a Zynq UltraScale+ block design with AXI DMA
through implementation to ``.bit``/``.hwh``/``.xsa``), and, once Vivado has run it, the parsed
utilization/timing/power reports in ``bitstream_manifest.json``.

Generation needs no Vivado (:func:`bitstreams.build.generate`); running needs it mounted
(:func:`bitstreams.build.run_vivado`, :func:`bitstreams.build.build_bitstream`). Reads what hw/
writes; imports neither torch nor finn.
"""
