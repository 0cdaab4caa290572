"""Compression passes on the detector: fine-tuning through the one trainer, and a lean BER.

Contract: :func:`finetune` runs :func:`quant.trainer.fit` on freshly sampled detection batches
(the data of ``quant.train``: one SNR per vector, uniform in the config's training range, MSE
to the BPSK symbols) with the caller's callbacks (masks, regularisers); it adds no loop of its
own. :func:`ber` measures the BER of neural detectors on exactly the vectors
:func:`quant.evaluate.evaluate_ber` draws (same seeds, same chunks), without the classical
baselines (the sphere decoder dominates that function's run time); MMSE is cheap and optional.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from rich.progress import Progress

from models.classical import mmse
from models.mimo import sample_batch, sample_numpy
from quant.config import QuantConfig
from quant.data import detection_config
from quant.evaluate import _CHUNK
from quant.export import hard_decisions
from quant.trainer import Callback, FitResult, fit, mse


def finetune(
    model: torch.nn.Module,
    cfg: QuantConfig,
    *,
    steps: int,
    lr: float,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    description: str = "fine-tune",
) -> FitResult:
    """Adam at a constant ``lr`` for ``steps`` steps of ``cfg.batch_size`` fresh vectors.

    Args:
        model: Trained in place (float or QAT), left in eval mode.
        cfg: Channel, training SNR range, batch size and threads.
        steps: Optimizer steps.
        lr: Learning rate (1e-4 for pruning/quantization fine-tuning in the reference papers).
        callbacks: Passes of the trainer (e.g. MaskCallback, GroupLasso).
        seed: Seed of the data stream.
        description: Label of the progress bar.
    """
    torch.set_num_threads(cfg.torch_threads)
    det = detection_config(cfg)
    gen = torch.Generator().manual_seed(seed)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = cfg.train_snr_db_min, cfg.train_snr_db_max
        snr = lo + (hi - lo) * torch.rand(cfg.batch_size, generator=gen)
        y, x, _, _ = sample_batch(det, cfg.batch_size, snr, gen)
        return y, x

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return fit(model, batch, mse, opt, steps=steps, callbacks=callbacks, description=description)


def ber(
    cfg: QuantConfig,
    detectors: dict[str, torch.nn.Module],
    *,
    seed: int = 1234,
    with_mmse: bool = False,
) -> dict:
    """BER per SNR (``cfg.eval_snr_db``, ``cfg.eval_bits_per_snr``) of each detector.

    Returns:
        ``{"snr_db": [...], "ber": {name: [...]}, "errors": {name: [...]},
        "bits_simulated_per_snr": int}``; the vectors equal evaluate_ber's for the same seed.
    """
    det = detection_config(cfg)
    n_vec = max(1, -(-cfg.eval_bits_per_snr // det.k_tx))
    names = list(detectors) + (["mmse"] if with_mmse else [])
    errors = {name: np.zeros(len(cfg.eval_snr_db), dtype=np.int64) for name in names}
    with Progress(transient=True) as bar:
        task = bar.add_task("BER", total=n_vec * len(cfg.eval_snr_db))
        for si, snr in enumerate(cfg.eval_snr_db):
            rng = np.random.default_rng([seed, si])
            done = 0
            while done < n_vec:
                b = min(_CHUNK, n_vec - done)
                y, x, h, sigma2 = sample_numpy(det, b, snr, rng)
                with torch.no_grad():
                    yt = torch.from_numpy(y.astype(np.float32))
                    for name, model in detectors.items():
                        model.eval()
                        errors[name][si] += int(np.sum(hard_decisions(model(yt).numpy()) != x))
                if with_mmse:
                    errors["mmse"][si] += int(np.sum(mmse(y, h, sigma2) != x))
                done += b
                bar.update(task, advance=b)
    bits = n_vec * det.k_tx
    return {
        "snr_db": [float(s) for s in cfg.eval_snr_db],
        "ber": {name: (errors[name] / bits).tolist() for name in names},
        "errors": {name: errors[name].tolist() for name in names},
        "bits_simulated_per_snr": int(bits),
    }


def no_ber_loss(errors: Sequence[int], ref_errors: Sequence[int], bits: int, z: float = 2.0):
    """True when, at every SNR, the BER is not worse than the reference's by more than ``z``
    standard errors of the difference of two binomial estimates (each from ``bits`` bits)."""
    for e, r in zip(errors, ref_errors, strict=True):
        p, q = e / bits, r / bits
        sd = np.sqrt((p * (1 - p) + q * (1 - q)) / bits)
        if p - q > z * max(sd, 1.0 / bits):
            return False
    return True
