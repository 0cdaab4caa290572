"""The ``fullycon-sharing`` experiment: k-means weight sharing (B-bit indices) of the shipped
float FullyCon, fine-tuned tied, against fixed-point QAT with B-bit weights, and the BER cost of
snapping the codebooks onto an 8-bit fixed-point grid (registered in
:mod:`experiments.registry` on import)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments import kit
from experiments.registry import experiment
from qphy.variants import Bits
from quant.compress.accounting import BIAS_BITS, FLOAT_BITS, shared_memory
from quant.compress.sharing import (
    WeightSharing,
    distinct_values,
    share_weights,
    snap_codebook_to_grid,
)


@dataclass(frozen=True)
class SharingGrid(kit.BerGrid):
    """Settings of ``fullycon-sharing`` (and :class:`~experiments.kit.BerGrid`'s).

    Attributes:
        index_bits: Index widths B (``2^B`` centroids per layer; the QAT variants get B-bit
            weights).
        finetune_steps: Steps of both the tied fine-tuning and the QAT fine-tuning.
        snap_bits: Width of the fixed-point grid the codebooks are snapped onto.
        act_bits: Activation width of the fixed-point QAT variants (the shared model keeps
            float activations).
    """

    index_bits: tuple[int, ...]
    finetune_steps: int
    snap_bits: int = 8
    act_bits: int = 8


SHARING_GRIDS = {
    "small": SharingGrid(
        index_bits=(3,), finetune_steps=10, batch_size=200, eval_bits_per_snr=20_000
    ),
    "full": SharingGrid(index_bits=(2, 3, 4, 5, 6), finetune_steps=1000),
}


@experiment(
    "fullycon-sharing",
    "k-means weight sharing (2^B centroids per layer, fine-tuned tied) vs B-bit fixed-point "
    "QAT, and the BER cost of snapping the codebooks to an 8-bit grid",
)
def fullycon_sharing(out_dir: Path, grid: str, overrides: dict) -> dict:
    st = kit.fullycon_study(
        "fullycon-sharing", SharingGrid, SHARING_GRIDS, out_dir, grid, overrides
    )
    s = st.s

    def shared(b: int, key: str) -> dict:
        model = copy.deepcopy(st.load())
        books = share_weights(model, b)
        before = kit.ber_curve(st.cfg, model, key)
        tuned = st.finetuned(model, key, steps=s.finetune_steps, callbacks=[WeightSharing(books)])
        row = {
            "method": "k-means sharing",
            "weight_bits": b,
            "ber_before_finetune": before,
            "max_distinct_per_layer": max(distinct_values(model).values()),
            "shared_memory": shared_memory(model, b).to_json(),
            **tuned,
        }
        for field, per_channel in (("snapped", False), ("snapped_per_channel", True)):
            row[field] = _snapped(st.cfg, model, s.snap_bits, per_channel, row, f"{key}_{field}")
        return row

    def qat(b: int, key: str) -> dict:
        model = kit.qat_start(st.load(), Bits(b, s.act_bits))
        tuned = st.finetuned(model, key, steps=s.finetune_steps)
        return {"method": "fixed-point QAT", "weight_bits": b, **tuned}

    # Per B: the k-means point, then the fixed-point QAT point of the same width.
    kinds = {
        "kmeans": (lambda b: f"kmeans_b{b}", lambda b: {"index_bits": b, "snap_bits": s.snap_bits}),
        "qat": (
            lambda b: f"qat_w{b}a{s.act_bits}",
            lambda b: {"weight_bits": b, "act_bits": s.act_bits},
        ),
    }
    rows, computed = st.run(
        st.sweep(
            lambda: {
                "method": "float",
                "weight_bits": FLOAT_BITS,
                **st.measure(st.load(), "float"),
            },
            [(b, kind) for b in s.index_bits for kind in kinds],
            lambda v: kinds[v[1]][0](v[0]),
            lambda v: {"finetune_steps": s.finetune_steps, **kinds[v[1]][1](v[0])},
            lambda v, key: shared(v[0], key) if v[1] == "kmeans" else qat(v[0], key),
        )
    )
    for row in rows:
        row["memory_bits"] = (
            row["shared_memory"]["memory_bits"]
            if "shared_memory" in row
            else row["account"]["dense_memory_bits"]
        )
    summary = st.summary(
        rows,
        computed,
        snap_rule="w -> round(w / s) * s, s the smallest power of two with max|w| <= "
        "(2^(bits-1) - 1) s (max over the layer, or over the channel for *_per_channel)",
        centroid_update="after every Adam step: centroid = mean of its cluster's updated "
        "weights, weights re-tied (cluster assignment fixed after k-means)",
    )
    table = _sharing_table(rows, summary["snr_db"], s.snap_bits)
    plot_rows = [{"key": r["key"], "ber": r["ber"]} for r in rows]
    plot_rows += [
        {"key": f"{r['key']}_snap{s.snap_bits}", "ber": r["snapped"]["ber"]}
        for r in rows
        if "snapped" in r
    ]  # (the per-channel snaps are in the table; the plot stays readable)
    return st.publish(
        summary,
        table,
        f"Shipped float FullyCon, fixed 30x20 BPSK channel. **kmeans_bB**: per layer 2^B "
        f"centroids (k-means, linear init over [min, max]), then {s.finetune_steps} tied "
        f"fine-tuning steps (Adam lr {s.lr:g}, batch {s.batch_size}; after each step every "
        f"centroid becomes the mean of its cluster's updated weights); float activations. "
        f"Memory: B-bit index per weight + 2^B x 32-bit codebook per layer + 32-bit biases. "
        f"**kmeans_bB_snap{s.snap_bits}**: the same model with its centroids rounded onto a "
        f"{s.snap_bits}-bit fixed-point grid (one power-of-two scale per layer, i.e. per "
        f"channel all equal: still <= 2^B distinct values per layer), no further training: "
        f"integer weights FINN's MVAU can hold; its memory column is the MVAU's (dense "
        f"{s.snap_bits}-bit weights + 32-bit biases). **kmeans_bB_snap{s.snap_bits}ch**: the "
        f"same with one power-of-two scale per output channel (finer grid; <= 2^B distinct "
        f"values per channel, more per layer). "
        f"**qat_wBa{s.act_bits}**: fixed-point QAT (quant.recipes, per-channel power-of-two "
        f"scales, narrow range: 2^B - 1 levels) with {s.act_bits}-bit activations, same steps, "
        f"lr and data. BER on {rows[0]['bits_per_snr']} bits per SNR (same vectors for every "
        f"row).",
        plot_title="FullyCon sharing",
        plot_rows=plot_rows,
    )


def _snapped(cfg, model, snap_bits: int, per_channel: bool, row: dict, key: str) -> dict:
    """The shared model with its codebooks snapped onto a ``snap_bits`` fixed-point grid (one
    power-of-two scale per layer, or per channel), measured; no further training."""
    snapped = copy.deepcopy(model)
    snap = snap_codebook_to_grid(snapped, snap_bits, per_channel=per_channel)
    weights = sum(layer.ints.numel() for layer in snap.values())
    return {
        "grid_bits": snap_bits,
        "scale": "one power of two per channel"
        if per_channel
        else "one power of two per layer (all channels equal)",
        "max_distinct_per_layer": max(distinct_values(snapped).values()),
        "scale_exponents": {
            n: sorted({int(e) for e in torch.log2(layer.scale).tolist()})
            for n, layer in snap.items()
        },
        # In FINN's MVAU the snapped weights are plain dense integers.
        "finn_memory_bits": int(weights * snap_bits + row["account"]["biases"] * BIAS_BITS),
        **kit.measure(cfg, snapped, key),
    }


def _sharing_table(
    rows: list[dict], snr_db: list[float], snap_bits: int
) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "B", "max distinct/layer", "memory kbit"]
    header += [f"BER {x:g} dB" for x in snr_db]
    table = []
    for r in rows:
        distinct = r.get("max_distinct_per_layer")
        table.append(
            [
                r["key"],
                str(r["weight_bits"]),
                "-" if distinct is None else str(distinct),
                kit.kbit(r["memory_bits"]),
                *kit.ber_cells(r),
            ]
        )
        for field, suffix in (("snapped", ""), ("snapped_per_channel", "ch")):
            if field in r:
                sn = r[field]
                table.append(
                    [
                        f"{r['key']}_snap{snap_bits}{suffix}",
                        str(r["weight_bits"]),
                        str(sn["max_distinct_per_layer"]),
                        kit.kbit(sn["finn_memory_bits"]),
                        *kit.ber_cells(sn),
                    ]
                )
    return header, table
