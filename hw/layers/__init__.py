"""qphy's own RTL stream layers (forks, joins, pooling): the HDL under ``hw/rtl``.

* :mod:`hw.layers.wrapper` - FINN-style port wrappers around the packed ``hw/rtl`` modules;
* :mod:`hw.layers.hdl` - HDL generation per layer (PE/SIMD folding), pure python;
* :mod:`hw.layers.ops` - the FINN custom ops (``*_rtl`` variants of FINN's HLS-only layers:
  python execution, cycle model, resource estimate, HDL) and the specialisation of integer adds.

Importing :mod:`hw.layers.ops` registers the ops with FINN (``hw.steps_graph`` does).
"""
