"""The user's ONNX node names, kept through every transformation of the hw build.

FINN's transformations rename nodes (``MatMul_0``, ``MVAU_rtl_3``) and replace groups of nodes by
new ones (MatMul + MultiThreshold -> MVAU). So that errors and per-layer figures name the layers
the user wrote, each node carries in its ``metadata_props`` the user names it stems from
(:data:`USER_NAMES`) and an id (:data:`NODE_ID`). While :func:`keep_user_names` is active, every
``ModelWrapper.transform`` is followed by :func:`propagate`: a node that appeared inherits the
names of the nodes that disappeared and shared a tensor with it; a node that replaced nothing
(a FIFO, a width converter) belongs to the layer feeding it. The wrap is installed at run time
around the build (site-packages are never edited) and removed afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator

from qonnx.core.modelwrapper import ModelWrapper

#: metadata_props key: JSON list of the user's node names this node implements.
USER_NAMES = "qphy.user_names"
#: metadata_props key: a build-unique id, to tell surviving nodes from new ones.
NODE_ID = "qphy.node_id"

_ids = itertools.count()


def _meta(node, key: str) -> str | None:
    for p in node.metadata_props:
        if p.key == key:
            return p.value
    return None


def _set_meta(node, key: str, value: str) -> None:
    for p in node.metadata_props:
        if p.key == key:
            p.value = value
            return
    entry = node.metadata_props.add()
    entry.key, entry.value = key, value


def user_names(node) -> list[str]:
    """The user's node names ``node`` implements ([] for a node without any)."""
    raw = _meta(node, USER_NAMES)
    return json.loads(raw) if raw else []


def display(node) -> str:
    """``fc1 (MVAU_rtl_0)`` where the user's names differ from the node's own, else the name."""
    names = user_names(node)
    if not names or names == [node.name]:
        return node.name or f"<unnamed {node.op_type}>"
    return f"{', '.join(names)} ({node.name})"


def tag_user_names(model: ModelWrapper) -> ModelWrapper:
    """Record each node's own name (``<op>_at_<index>`` when unnamed) as its user name."""
    for idx, node in enumerate(model.graph.node):
        if _meta(node, USER_NAMES) is None:
            _set_meta(node, USER_NAMES, json.dumps([node.name or f"{node.op_type}_at_{idx}"]))
        if _meta(node, NODE_ID) is None:
            _set_meta(node, NODE_ID, str(next(_ids)))
    return model


def _snapshot(model: ModelWrapper) -> list[tuple[str | None, set[str], set[str], list[str]]]:
    return [
        (_meta(n, NODE_ID), set(n.input), set(n.output), user_names(n)) for n in model.graph.node
    ]


def propagate(before: list, model: ModelWrapper) -> None:
    """Give every untagged node of ``model`` the user names it stems from (see module doc)."""
    alive = {_meta(n, NODE_ID) for n in model.graph.node}
    gone = [(ins, outs, names) for nid, ins, outs, names in before if nid not in alive and names]
    present = {t for n in model.graph.node for t in (*n.input, *n.output)}
    present |= {t.name for t in (*model.graph.input, *model.graph.output)}
    producers = {}
    for n in model.graph.node:
        for t in n.output:
            producers[t] = n
    untagged = [n for n in model.graph.node if _meta(n, USER_NAMES) is None]
    for node in untagged:
        ins, outs = set(node.input), set(node.output)
        # A replaced node: it produced what this node produces, or it took this node's input
        # and its own output vanished with it (MatMul + MultiThreshold -> one MVAU).
        names: list[str] = []
        for g_ins, g_outs, g_names in gone:
            if (outs & g_outs) or ((ins & g_ins) and not (g_outs & present)):
                names += [x for x in g_names if x not in names]
        if not names:  # any tensor in common
            for g_ins, g_outs, g_names in gone:
                if (ins | outs) & (g_ins | g_outs):
                    names += [x for x in g_names if x not in names]
        if names:
            _set_meta(node, USER_NAMES, json.dumps(names))
    # Nodes that replaced nothing (FIFOs, width converters): the layer feeding them, in graph
    # order so chains of them resolve.
    for node in untagged:
        if _meta(node, USER_NAMES) is not None:
            continue
        src = next((producers[t] for t in node.input if t in producers), None)
        inherited = user_names(src) if src is not None else []
        _set_meta(node, USER_NAMES, json.dumps(inherited))
    for node in model.graph.node:
        if _meta(node, NODE_ID) is None:
            _set_meta(node, NODE_ID, str(next(_ids)))


@contextlib.contextmanager
def keep_user_names() -> Iterator[None]:
    """Wrap ``ModelWrapper.transform`` so every transformation propagates the user's names."""
    original = ModelWrapper.transform
    depth = [0]

    def transform(self, transformation, make_deepcopy=True, cleanup=True):
        # Only the outermost call compares: transformations call transform() inside (their
        # clean-up too), and an inner call would see the replaced nodes already gone.
        depth[0] += 1
        try:
            before = _snapshot(self) if depth[0] == 1 else None
            result = original(self, transformation, make_deepcopy, cleanup)
        finally:
            depth[0] -= 1
        if before is not None:
            propagate(before, result)
        return result

    ModelWrapper.transform = transform
    try:
        yield
    finally:
        ModelWrapper.transform = original
