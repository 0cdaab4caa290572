"""The typed, versioned hand-offs between stages (numpy-free, torch-free).

Every stage reads the previous stage's directory through one of these, never through raw dicts:

* :class:`HostSpec`: what the host does around the accelerator (input pre-processing and
  quantizer, layout permutations, the float output tail, hard decisions). Written by hw,
  read by sim and by the board driver (``qphy.host`` implements it with numpy only).
* :class:`Manifest` (``hw/rtl/manifest.json``): the stream chain of the generated RTL, its
  boundary streams, the clock, the analytic cycle figures and the HostSpec.
* :class:`SimJob` (``job.json``): one verification run for a bench (cocotb or the compiled
  harness): vector files, stream layouts, clock, backpressure and seed.
* :class:`Report` (``report.json``): the verdict, with the target's own figures as extras.

Each has ``to_json``/``from_json`` and ``read``/``write``; ``from_json`` refuses another version
or unknown/missing keys with :class:`~qphy.errors.ContractError`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from qphy.errors import ContractError
from qphy.fsutil import atomic_write_json

if TYPE_CHECKING:  # Python 3.11+; the board images run 3.10 (annotations are strings here)
    from typing import Self


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Build a value of type ``hint`` from its JSON form (nested contracts, lists, optionals)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where) if len(args) == 1 else value
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        if not isinstance(value, list | tuple):
            raise ContractError(f"{where}: expected a list, got {type(value).__name__}")
        seq = [_convert(item, v, where) for v in value]
        return tuple(seq) if origin is tuple else seq
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint.from_json(value) if issubclass(hint, _Json) else hint(**value)
    return value


class _Json:
    """to/from JSON for a frozen dataclass; nested dataclasses are (de)serialised too."""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: Any) -> Self:
        where = cls.__name__
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ContractError(f"{where}: unknown key(s) {unknown}")
        required = [
            n
            for n, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = sorted(set(required) - set(data))
        if missing:
            raise ContractError(f"{where}: missing key(s) {missing}")
        try:
            return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()})
        except (TypeError, ValueError) as exc:
            raise ContractError(f"{where}: {exc}") from exc


class _Versioned(_Json):
    """A contract stored as a file of its own: carries ``version`` and refuses any other."""

    VERSION: ClassVar[int] = 1
    FILE: ClassVar[str] = ""

    def to_json(self) -> dict:
        return {"version": self.VERSION, **super().to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            raise ContractError(f"{cls.__name__}: expected a JSON object")
        version = data.get("version")
        if version != cls.VERSION:
            raise ContractError(
                f"{cls.__name__} version {version!r} is not the one this qphy reads "
                f"({cls.VERSION}); re-run the stage that wrote it"
            )
        return super().from_json({k: v for k, v in data.items() if k != "version"})

    def write(self, path: Path) -> Path:
        atomic_write_json(Path(path), self.to_json())
        return Path(path)

    @classmethod
    def read(cls, path: Path) -> Self:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ContractError(f"{path}: no such {cls.__name__} file") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ContractError(f"{path}: unreadable {cls.__name__} ({exc})") from exc
        try:
            return cls.from_json(data)
        except ContractError as exc:
            raise ContractError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class StreamSpec(_Json):
    """One AXI-stream boundary of the accelerator (FINN's packing: element 0 in the LSBs)."""

    datatype: str
    elem_bits: int
    signed: bool
    elems_per_beat: int
    beats_per_frame: int
    width_bits: int

    @property
    def elems_per_frame(self) -> int:
        return self.elems_per_beat * self.beats_per_frame

    @property
    def beat_bytes(self) -> int:
        """Bytes per beat in a DMA buffer (the stream width rounded up to whole bytes)."""
        return (self.width_bits + 7) // 8


@dataclass(frozen=True)
class QuantSpec(_Json):
    """A QONNX ``Quant`` node as the host applies it: ``clip(x / scale, lo, hi)``, rounded."""

    scale: Any  # a float or a nested list broadcasting against the model's input shape
    bits: int
    signed: bool
    narrow: bool
    rounding_mode: str = "ROUND"


@dataclass(frozen=True)
class HostOp(_Json):
    """An elementwise float op with a constant: ``x <op> const`` (Add, Sub, Mul, Div)."""

    op_type: str
    const: Any


@dataclass(frozen=True)
class HostSpec(_Json):
    """Everything the host computes around the accelerator, in order.

    Input: ``raw -> input_pre ops -> model input -> input_quant -> flatten -> input_perm ->
    stream``. Output: ``stream -> output_perm (to model order) -> output_tail ops -> model
    output -> decision``.

    Attributes:
        input_quant: The model's input quantizer, moved off the graph.
        input_shape: The model's input shape per vector (no batch dimension).
        input_datatype: FINN datatype of the integers the accelerator receives.
        input_pre: Ops from the raw data to the model's input (e.g. the CSI encoder's centring
            ``(x - 0.5) * 16``); golden inputs are model inputs, so they skip these.
        input_perm: ``hw_in[i] = x_flat[input_perm[i]]`` (None: identity).
        output_tail: Float ops the host applies to the accelerator's integers (output scale).
        output_datatype: FINN datatype of the integers the accelerator sends.
        output_perm: ``y_flat[j] = hw_out[output_perm[j]]`` (None: identity).
        decision: ``sign`` for hard BPSK decisions (+1 / -1, 0 counts as +1), None for none.
    """

    input_quant: QuantSpec
    input_shape: list[int]
    input_datatype: str
    output_datatype: str = ""
    input_pre: list[HostOp] = field(default_factory=list)
    input_perm: list[int] | None = None
    output_tail: list[HostOp] = field(default_factory=list)
    output_perm: list[int] | None = None
    decision: str | None = None


@dataclass(frozen=True)
class HostExtras:
    """What a target adds to the HostSpec that the graph cannot tell: the ops from raw data
    to the model's input, and the hard decision on its output (see ``HostSpec``). It lives
    here, with the HostSpec it feeds, so the export (quant) and the Target registry (qphy.targets)
    both read it from the kernel instead of from each other."""

    input_pre: list[HostOp] = field(default_factory=list)
    decision: str | None = None

    def to_json(self) -> dict:
        return {"input_pre": [op.to_json() for op in self.input_pre], "decision": self.decision}


#: ONNX model metadata key carrying the HostSpec's fields from the export through every hw step
#: (hw/export.py turns them into the manifest's HostSpec).
HOST_META = "qphy_host"


@dataclass(frozen=True)
class NodeSpec(_Json):
    """One RTL layer of the stream chain."""

    name: str
    op_type: str
    module: str
    in_width_bits: int
    out_width_bits: int
    files: list[str]
    memstream: dict | None = None
    thresholds_prefix: str | None = None
    fifo_depth: int | None = None
    #: Graph designs (forks/joins, see hw/graph_stitch.py): the stream names this node reads and
    #: writes (empty: a node of the linear chain), their widths, and module parameters.
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    in_widths: list[int] = field(default_factory=list)
    out_widths: list[int] = field(default_factory=list)
    params: dict | None = None


@dataclass(frozen=True)
class Manifest(_Versioned):
    """``hw/rtl/manifest.json``: the generated RTL as every consumer of it needs to know it."""

    VERSION: ClassVar[int] = 2
    FILE: ClassVar[str] = "manifest.json"

    fpga_part: str
    clock_mhz: float
    input: StreamSpec
    output: StreamSpec
    nodes: list[NodeSpec]
    host: HostSpec
    analytic_cycles_per_frame: int
    analytic_latency_cycles: int
    top: str = "qphy_dataflow_top"


@dataclass(frozen=True)
class SimJob(_Versioned):
    """One verification run of a built design, for either bench (cocotb or compiled harness).

    Paths are absolute. ``inputs``/``expected`` are int64 ``(n, elems)`` .npy files in stream
    order; the bench writes ``actual`` (.npy) and ``results`` (JSON).
    """

    FILE: ClassVar[str] = "job.json"

    inputs: str
    expected: str
    actual: str
    results: str
    input: StreamSpec
    output: StreamSpec
    n_out_elems: int
    clock_period_ns: float
    seed: int
    source_pause_prob: float
    sink_pause_prob: float
    n_burst: int
    stall_limit_cycles: int


#: The keys of every report.json, in order (targets add their own figures after them).
REPORT_KEYS = (
    "version",
    "variant",
    "bit_exact",
    "vectors_checked",
    "mismatches",
    "latency_cycles",
    "cycles_per_frame",
    "clock_mhz",
    "latency_us",
    "throughput_vectors_per_s",
    "budget_us",
    "within_budget",
    "fpga_part",
    "estimated_resources",
    "fifo_depths",
    "tool_versions",
    "fifo_model",
    "coverage",
)


@dataclass(frozen=True)
class Report(_Versioned):
    """``report.json``: the verdict of one build; ``extras`` (the target's own figures, e.g.
    NMSE) are stored as top-level keys after the common ones."""

    FILE: ClassVar[str] = "report.json"

    variant: str
    bit_exact: bool
    vectors_checked: int
    mismatches: int
    latency_cycles: int
    cycles_per_frame: int
    clock_mhz: float
    latency_us: float
    throughput_vectors_per_s: float
    budget_us: float
    within_budget: bool
    fpga_part: str
    estimated_resources: dict
    fifo_depths: dict
    tool_versions: dict
    extras: dict = field(default_factory=dict)
    #: How the StreamingFIFOs were simulated: "sized" (finn-rtllib's fifo at the sized depths,
    #: sim/fifos.py) or "gauge" (FINN's unbounded fifo_gauge); "" in reports older than that.
    fifo_model: str = ""
    #: Accumulator extremes reached vs the widths FINN chose, thresholds crossed, corner
    #: vectors (sim/coverage.py); {} when not computed.
    coverage: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.bit_exact and self.within_budget

    def to_json(self) -> dict:
        d = super().to_json()
        extras = d.pop("extras")
        clash = sorted(set(extras) & set(d))
        if clash:
            raise ContractError(f"report extras {clash} would overwrite the verdict's own keys")
        return {**d, **extras}

    @classmethod
    def from_json(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            raise ContractError("Report: expected a JSON object")
        common = {k: v for k, v in data.items() if k in REPORT_KEYS}
        extras = {k: v for k, v in data.items() if k not in REPORT_KEYS}
        return super().from_json({**common, "extras": extras})

    def __getitem__(self, key: str) -> Any:
        """``report["latency_us"]``: the report.json view (extras included)."""
        return self.to_json()[key]

    def with_extras(self, **extras: Any) -> Report:
        return dataclasses.replace(self, extras={**self.extras, **extras})
