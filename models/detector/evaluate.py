"""BER evaluation of the detectors (float, QAT, ZF, MMSE, ML) on the same seeded data."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from models.detector.classical import ml_sphere, mmse, zf
from models.detector.config import QuantConfig
from models.detector.data import detection_config
from models.detector.mimo import sample_numpy
from quant.export import hard_decisions

log = logging.getLogger(__name__)

#: Vectors per chunk: bounds memory and lets the progress bar move.
_CHUNK = 5000


#: The classical detectors evaluate_ber can run next to the networks.
BASELINES = {"zf": lambda y, h, s2: zf(y, h), "mmse": mmse, "ml": lambda y, h, s2: ml_sphere(y, h)}

#: What a detector reads of a chunk ``(y (B, N), H (B, N, K))``: here y itself (FullyCon, the
#: fixed-channel DetNet); the varying-channel DetNet passes its host inputs.
InputFn = Callable[[np.ndarray, np.ndarray], torch.Tensor]


def received(y: np.ndarray, h: np.ndarray) -> torch.Tensor:
    """The default :data:`InputFn`: the received vectors as float32."""
    return torch.from_numpy(y.astype(np.float32))


def evaluate_ber(
    cfg: QuantConfig,
    detectors: dict[str, torch.nn.Module],
    seed: int = 1234,
    baselines: Sequence[str] = ("zf", "mmse", "ml"),
    inputs: InputFn = received,
) -> dict:
    """BER per SNR for each neural detector and the classical ``baselines``.

    Every detector sees exactly the same vectors (one seeded stream per SNR point), as
    ``inputs(y, H)`` of each chunk (default: y).

    Returns:
        ``{"snr_db": [...], "ber": {name: [...]}, "errors": {name: [...]},
        "bits_simulated_per_snr": int}``.
    """
    det = detection_config(cfg)
    n_vec = max(1, -(-cfg.eval_bits_per_snr // det.k_tx))
    names = list(detectors) + list(baselines)
    errors = {name: np.zeros(len(cfg.eval_snr_db), dtype=np.int64) for name in names}
    with Progress() as bar:
        task = bar.add_task("BER", total=n_vec * len(cfg.eval_snr_db))
        for si, snr in enumerate(cfg.eval_snr_db):
            rng = np.random.default_rng([seed, si])
            done = 0
            while done < n_vec:
                b = min(_CHUNK, n_vec - done)
                y, x, h, sigma2 = sample_numpy(det, b, snr, rng)
                with torch.no_grad():
                    u = inputs(y, h)
                    for name, model in detectors.items():
                        model.eval()
                        xh = hard_decisions(model(u).numpy())
                        errors[name][si] += int(np.sum(xh != x))
                for name in baselines:
                    errors[name][si] += int(np.sum(BASELINES[name](y, h, sigma2) != x))
                done += b
                bar.update(task, advance=b)
    bits = n_vec * det.k_tx
    return {
        "snr_db": [float(s) for s in cfg.eval_snr_db],
        "ber": {name: (errors[name] / bits).tolist() for name in names},
        "errors": {name: errors[name].tolist() for name in names},
        "bits_simulated_per_snr": int(bits),
    }


def snr_at_ber(snr_db: list[float], ber_curve: list[float], target: float) -> float | None:
    """SNR (dB) where the curve crosses ``target``, interpolating log10(BER) linearly in dB."""
    s = np.asarray(snr_db, dtype=float)
    b = np.log10(np.maximum(np.asarray(ber_curve, dtype=float), 1e-12))
    t = np.log10(target)
    for i in range(len(s) - 1):
        if b[i] >= t >= b[i + 1] and b[i] != b[i + 1]:
            return float(s[i] + (b[i] - t) * (s[i + 1] - s[i]) / (b[i] - b[i + 1]))
    return None


def plot_ber(result: dict, path: Path, title: str) -> None:
    """BER-vs-SNR plot (log scale), one curve per detector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, curve in result["ber"].items():
        vals = np.where(np.asarray(curve) > 0, curve, np.nan)
        ax.semilogy(result["snr_db"], vals, marker="o", label=name)
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("BER")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_ber(result: dict, out_dir: Path, title: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ber.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_ber(result, out_dir / "ber.png", title)
