"""Verilator-only preparation of the stitched RTL: copy ``rtl/src`` and patch the copies.

hw/ writes the layers and the stitched top (:mod:`hw.stitch`) as every consumer needs them;
what only Verilator needs (finn-rtllib constructs it rejects) is fixed here, in the sim build
directory's own copy, never in rtl/ and never in site-packages.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from hw.stitch import TOP_MODULE, StitchedDesign, source_order
from qphy.contracts import Manifest
from qphy.errors import PipelineError
from sim.fifos import patch_fifo_sv, patch_fifo_wrapper

log = logging.getLogger(__name__)


def patch_add_multi(text: str) -> str:
    """Hoist add_multi's constant function out of its generate block (Verilator rejects it).

    finn-rtllib's mvu/add_multi.sv declares ``init_leaf_loads`` inside ``genTree``; Verilator
    cannot evaluate a constant function declared in a generate scope. Moving the typedef,
    function and LEAF_LOAD localparam to module scope is equivalent (they depend only on N).
    """
    pattern = re.compile(
        r"(\s*// Compute the count of decendents.*?\n)?"
        r"(\s*typedef int unsigned\s+leaf_load_t\[2\*N-1\];.*?"
        r"localparam leaf_load_t\s+LEAF_LOAD = init_leaf_loads\(\);\n)",
        re.DOTALL,
    )
    m = pattern.search(text)
    if m is not None and "genTree" in text and m.start() < text.index("genTree"):
        return text  # already hoisted
    if m is None:
        if "init_leaf_loads" in text:
            raise PipelineError("add_multi.sv changed upstream: cannot apply the Verilator fix")
        return text
    block = m.group(2)
    text = text[: m.start()] + "\n" + text[m.end() :]
    anchor = "\tuwire [SUM_WIDTH-1:0]  sum0;"
    if anchor not in text:
        raise PipelineError("add_multi.sv changed upstream: anchor for the Verilator fix missing")
    return text.replace(anchor, block.rstrip("\n") + "\n\n" + anchor, 1)


_PATCHES = {"add_multi.sv": patch_add_multi, "fifo.sv": patch_fifo_sv}


def prepare_sources(rtl_dir: Path, sim_dir: Path) -> StitchedDesign:
    """Copy rtl_dir/src (layers + stitched top) into sim_dir/src and apply the Verilator fixes."""
    manifest = Manifest.read(rtl_dir / "manifest.json")
    src_dir = sim_dir / "src"
    if src_dir.exists():
        shutil.rmtree(src_dir)
    shutil.copytree(rtl_dir / "src", src_dir)
    if not (src_dir / f"{TOP_MODULE}.sv").is_file():
        raise PipelineError(f"{rtl_dir} has no stitched top {TOP_MODULE}.sv; rebuild the hw stage")
    for name, patch in _PATCHES.items():
        f = src_dir / name
        if f.exists():
            f.write_text(patch(f.read_text()))
            log.info("patched %s for Verilator", f)
    for f in sorted(src_dir.iterdir()):
        # Every StreamingFIFO wrapper simulates the real fifo at its sized depth (sim.fifos).
        if f.suffix in (".v", ".sv"):
            text = f.read_text()
            patched = patch_fifo_wrapper(text)
            if patched != text:
                f.write_text(patched)
    return StitchedDesign(source_order(src_dir), TOP_MODULE, manifest, src_dir)
