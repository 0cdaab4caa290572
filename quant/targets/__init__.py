"""The built-in targets, registered in :mod:`qphy.targets` on import."""

from quant.targets import csi_encoder, detector  # noqa: F401
