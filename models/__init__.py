"""Network families: one sub-package each (``models/detector``, ``models/csi``, yours).

A family holds everything one network is: its float modules, data, classical baselines,
quantized variants (on :mod:`quant`'s recipes), training and evaluation jobs, and the one
:class:`qphy.targets.Target` it registers. Families are found by scanning this folder
(:mod:`models.families`), never listed by hand: adding a network is adding a folder.

Imports: a family may import ``qphy`` (the kernel) and ``quant`` (the library); never ``hw``,
``sim`` or ``experiments`` (tests/test_imports.py checks it).
"""
