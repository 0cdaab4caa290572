"""The detector family: the MIMO detector (30 rx x 20 tx real BPSK), FullyCon and DetNet.

Float modules (:mod:`.fullycon`, :mod:`.detnet`), data (:mod:`.mimo`, :mod:`.data`), classical
baselines (:mod:`.classical`), quantized variants (:mod:`.qat`, :mod:`.detnet_hw`), jobs
(:mod:`.train`, :mod:`.evaluate`, :mod:`.jobs`, :mod:`.detnet_train`, :mod:`.finetune`), its
compression passes (:mod:`.structured`, :mod:`.lowrank`, :mod:`.green`) and its Target
(:mod:`.target`, ``qphy build detector``).
"""

# Importing the family registers its float networks and its Target (models.families).
from models.detector import detnet, fullycon, target  # noqa: F401
