"""qphy's own graph transformations (qonnx contract: ``apply(model) -> (model, changed)``)."""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

#: Node attribute-free marker: names of MultiThreshold nodes already made half-even.
_DONE_META = "qphy_half_even_thresholds"


class RoundHalfEvenThresholds(Transformation):
    """Make MultiThreshold nodes round ties to even, as qonnx's Quant (ROUND) and torch.round do.

    FINN's ConvertQONNXtoFINN turns a quantizer into thresholds at the midpoints (k + 0.5) * s
    and MultiThreshold counts ``x >= t``: ties round half up. With power-of-two scales every
    value lies on a grid that contains those midpoints, so ties are frequent and the hardware
    would differ from the golden model by one LSB. For an integer input, a threshold that is an
    integer is such a tie; the tie must go up only if the upper output value is even, otherwise
    the threshold moves to t + 1 (``x >= t + 1`` is ``x > t`` on integers).

    Needs integer-typed MultiThreshold inputs (run after Streamline) and is applied once per
    node (tracked in the model's metadata).
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        raw = model.get_metadata_prop(_DONE_META) or ""
        done = set(filter(None, raw.split(",")))
        for node in model.graph.node:
            if node.op_type != "MultiThreshold" or node.name in done:
                continue
            if not model.get_tensor_datatype(node.input[0]).is_integer():
                continue
            thresholds = model.get_initializer(node.input[1])
            if thresholds is None:
                continue
            out_bias = int(round(getCustomOp(node).get_nodeattr("out_bias")))
            j = np.arange(thresholds.shape[-1])
            tie_goes_down = (j + 1 + out_bias) % 2 != 0
            is_tie = thresholds == np.round(thresholds)
            fixed = np.where(is_tie & tie_goes_down, thresholds + 1, thresholds)
            model.set_initializer(node.input[1], fixed.astype(thresholds.dtype))
            done.add(node.name)
        model.set_metadata_prop(_DONE_META, ",".join(sorted(done)))
        return model, False
