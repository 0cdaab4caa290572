"""The research wing, on the top floor: studies of compression and hardware trade-offs.

* :mod:`experiments.registry`: ``run_experiment(name, out_dir, grid)`` (``qphy experiment``),
  the studies discovered by scanning ``experiments/studies/`` (one file each).
* :mod:`experiments.kit`: the public kit a study is written on (settings, points, run,
  reference row, tables, plots, write).
* :mod:`experiments.sweep`: the resumable point runner, local or on Ray.
* :mod:`experiments.hardware`: the hardware-point builder (export -> FINN -> RTL verdict).

It may import every other package; nothing imports it but the CLI's ``experiment`` command.
"""
