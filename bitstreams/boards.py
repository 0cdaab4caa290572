"""Boards and the per model x board recipe: what a Vivado flow needs beyond the RTL.

A :class:`Board` is fixed (part, Vivado board-part pattern, processing system); a
:class:`Recipe` binds a board to one built design (``hw/rtl/manifest.json``): the PL clock and
the AXI DMA configuration derived from the accelerator's stream widths.

Parts are those FINN itself maps to these boards (``finn.util.basic.pynq_part_map`` in
finn-plus 1.6.1: ZCU102, ZCU104, ZCU111, RFSoC4x2); their capacities come from the one device
table, :mod:`hw.devices` (every board's part has a row: tests/hw/test_devices.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from hw.devices import require_device
from qphy.contracts import Manifest, StreamSpec
from qphy.errors import ConfigError

log = logging.getLogger(__name__)

#: Stream widths AMD AXI DMA 7.1 supports on its AXI-stream side (c_m_axis_mm2s_tdata_width,
#: c_s_axis_s2mm_tdata_width), in bytes.
DMA_STREAM_BYTES = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class Board:
    """One evaluation board with a Zynq UltraScale+ MPSoC/RFSoC.

    Attributes:
        name: qphy's name for it (``--board``), lower case.
        part: The FPGA part on the board.
        board_part_glob: Pattern for Vivado's ``get_board_parts``; the newest match is used, so
            one recipe works across Vivado releases that ship different board-file revisions.
        board_files_hint: Where the board files come from when Vivado lacks them.
        ps_ip: The processing-system IP of the block design.
        hp_port: The PS slave port the DMA's memory-mapped masters use (PYNQ's usual HP0).
        max_dma_mm_bits: Width of that PS port; wider DMA masters go through SmartConnect.
    """

    name: str
    part: str
    board_part_glob: str
    board_files_hint: str = "shipped with Vivado (data/xhub/boards)"
    ps_ip: str = "zynq_ultra_ps_e"
    hp_port: str = "S_AXI_HP0_FPD"
    max_dma_mm_bits: int = 128

    @property
    def capacity(self) -> dict[str, int]:
        """The part's LUT/FF/BRAM_18K/URAM/DSP from the one device table (:mod:`hw.devices`)."""
        return dict(require_device(self.part).capacity)


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("zcu104", "xczu7ev-ffvc1156-2-e", "*:zcu104:part0:*"),
        Board("zcu102", "xczu9eg-ffvb1156-2-e", "*:zcu102:part0:*"),
        Board("zcu111", "xczu28dr-ffvg1517-2-e", "*:zcu111:part0:*"),
        Board(
            "rfsoc4x2",
            "xczu48dr-ffvg1517-2-e",
            "*:rfsoc4x2:part0:*",
            board_files_hint="not shipped with Vivado: install Real Digital's RFSoC 4x2 board "
            "files (set_param board.repoPaths)",
        ),
    )
}


def board(name: str) -> Board:
    """The board called ``name`` (case-insensitive), or ConfigError listing the known ones."""
    try:
        return BOARDS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown board '{name}'; known: {', '.join(sorted(BOARDS))}") from None


def part_family(part: str) -> str:
    """Coarse device family: the RTL of MVAU_rtl differs between DSP48E2 and DSP58 devices."""
    p = part.lower()
    if p.startswith(("xczu", "xck26", "xck24")):
        return "zynq-ultrascale+"
    if p.startswith("xc7z"):
        return "zynq-7000"
    return "other"


@dataclass(frozen=True)
class StreamDma:
    """One direction of the DMA path: DMA stream width, the accelerator's byte-padded beat and
    whether an AXI4-Stream data width converter sits between them.

    Attributes:
        accel_bits: The accelerator's stream width (FINN's padded width).
        beat_bytes: The accelerator beat rounded up to bytes: the host buffer layout
            (``StreamSpec.beat_bytes``) and the wrapper's port width.
        dma_bytes: The DMA stream width, the largest supported width that divides
            ``beat_bytes`` (an AXIS converter needs an integer byte ratio).
    """

    accel_bits: int
    beat_bytes: int
    dma_bytes: int

    @property
    def needs_converter(self) -> bool:
        return self.dma_bytes != self.beat_bytes

    @property
    def dma_bits(self) -> int:
        return 8 * self.dma_bytes

    @property
    def dma_cycles_per_beat(self) -> int:
        """Clock cycles the DMA needs per accelerator beat (one DMA word per cycle)."""
        return self.beat_bytes // self.dma_bytes


def stream_dma(stream: StreamSpec) -> StreamDma:
    """DMA width for one accelerator stream.

    The host packs beats of ``beat_bytes`` back to back (qphy.host.pack_beats); keeping that
    layout means the DMA word must divide the beat (or equal it): the widest supported width
    that does is chosen, and an AXIS data width converter bridges the rest. Padding the beat up to
    a DMA width instead would change the host's buffer layout.
    """
    beat = stream.beat_bytes
    dma = max(b for b in DMA_STREAM_BYTES if beat % b == 0)
    return StreamDma(accel_bits=stream.width_bits, beat_bytes=beat, dma_bytes=dma)


@dataclass(frozen=True)
class DmaConfig:
    """The AXI DMA (simple mode, no scatter-gather) between the PS and the accelerator.

    Attributes:
        mm2s: Host memory -> accelerator input stream.
        s2mm: Accelerator output stream -> host memory.
        length_width_bits: c_sg_length_width: largest single transfer is 2**this - 1 bytes.
        mm_bits: Width of the DMA's memory-mapped masters.
    """

    mm2s: StreamDma
    s2mm: StreamDma
    length_width_bits: int = 26
    mm_bits: int = 64


@dataclass(frozen=True)
class Recipe:
    """Everything a Vivado flow needs for one design on one board.

    Attributes:
        variant: The design's name (the hw build directory's name, e.g. ``fullycon_w4a4``).
        board: The board.
        clock_mhz: Requested PL clock (PS ``pl_clk0``) and OOC clock constraint, from the manifest.
        dma: DMA and width converters.
        pending_frames: Depth of the wrapper's TLAST bookkeeping (frames between their last
            input beat and their last output beat); more in flight only throttles the input.
        in_beats_per_frame / out_beats_per_frame: Stream beats per frame.
        analytic_cycles_per_frame: FINN's estimate of the slowest layer (initiation interval).
    """

    variant: str
    board: Board
    clock_mhz: float
    dma: DmaConfig
    pending_frames: int
    in_beats_per_frame: int
    out_beats_per_frame: int
    analytic_cycles_per_frame: int

    @property
    def part(self) -> str:
        return self.board.part

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    @property
    def dma_cycles_per_frame(self) -> int:
        """Cycles per frame the DMA path allows (the slower of the two directions)."""
        return max(
            self.in_beats_per_frame * self.dma.mm2s.dma_cycles_per_beat,
            self.out_beats_per_frame * self.dma.s2mm.dma_cycles_per_beat,
        )

    @property
    def dma_limited(self) -> bool:
        """True when the DMA, not the accelerator, would set the throughput."""
        return self.dma_cycles_per_frame > self.analytic_cycles_per_frame


def make_recipe(manifest: Manifest, board_: Board, variant: str) -> Recipe:
    """The recipe of a built design on ``board_``.

    Raises:
        ConfigError: The design was built for another device family (its RTL would not fit the
            board's DSP primitives): rebuild hw with ``--fpga-part <board part>``.
    """
    if part_family(manifest.fpga_part) != part_family(board_.part):
        raise ConfigError(
            f"design built for {manifest.fpga_part} ({part_family(manifest.fpga_part)}) cannot go "
            f"on {board_.name} ({board_.part}); rebuild it with --fpga-part {board_.part}"
        )
    if manifest.fpga_part != board_.part:
        log.warning(
            "design was built (folded, resource-estimated) for %s, the %s carries %s",
            manifest.fpga_part,
            board_.name,
            board_.part,
        )
    mm2s, s2mm = stream_dma(manifest.input), stream_dma(manifest.output)
    mm_bits = min(max(32, mm2s.dma_bits, s2mm.dma_bits), 1024)
    cpf = max(1, manifest.analytic_cycles_per_frame)
    in_flight = math.ceil(max(1, manifest.analytic_latency_cycles) / cpf) + 2
    pending = max(16, 1 << (2 * in_flight - 1).bit_length())
    recipe = Recipe(
        variant=variant,
        board=board_,
        clock_mhz=float(manifest.clock_mhz),
        dma=DmaConfig(mm2s=mm2s, s2mm=s2mm, mm_bits=mm_bits),
        pending_frames=pending,
        in_beats_per_frame=manifest.input.beats_per_frame,
        out_beats_per_frame=manifest.output.beats_per_frame,
        analytic_cycles_per_frame=manifest.analytic_cycles_per_frame,
    )
    if recipe.dma_limited:
        log.warning(
            "DMA path allows one frame per %d cycles, the accelerator %d: the board's throughput "
            "will be DMA-bound",
            recipe.dma_cycles_per_frame,
            recipe.analytic_cycles_per_frame,
        )
    return recipe
