"""The CSI family: CSI-feedback autoencoders (CsiNet+, ConvCsiNet, ConvSquCsiNet).

Float modules (:mod:`.csinet`), data (:mod:`.data`, the Sionna generator :mod:`.channel`, the
on-disk cache :mod:`.store`), quantized variants (:mod:`.qat`), jobs (:mod:`.jobs`) and its
Target (:mod:`.target`, ``qphy build csi-encoder``: the UE-side encoder).
"""

# Importing the family registers its float networks and its Target (models.families).
from models.csi import csinet, target  # noqa: F401
