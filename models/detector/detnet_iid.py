"""The detector target's varying-channel DetNet (``--arch detnet --channel iid``): float
training (the float :class:`.detnet.DetNet`), QAT of its hardware form
(:class:`.detnet_iid_hw.QuantDetNetIID`), checkpoints, golden inputs and the BER evaluation.

Both trainings go through :func:`quant.trainer.fit` with DetNet's loss
``sum_l log(l) ||x - x_l||^2 / ||x - x_LS||^2`` on fresh i.i.d. batches (one channel per vector).
The host computes ``[H^T y | c vec(H^T H)]`` (:func:`.detnet_iid_hw.host_inputs`): it is the
hardware model's input, and its golden inputs are such vectors (half of them scaled to
saturate the input quantizer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.detector.detnet import DetNet, DetNetShape
from models.detector.detnet_iid_hw import (
    GRAM_SCALE,
    QuantDetNetIID,
    from_float,
    host_inputs,
    qat,
    symmetric_mix_bias,
)


def _shape(cfg) -> DetNetShape:
    return DetNetShape(n_layers=cfg.layers, mix=cfg.detnet_mix)


def train_float(cfg) -> tuple[DetNet, float]:
    """The float DetNet of ``cfg`` on the i.i.d. channel (:func:`.detnet_hw.train_float`)."""
    from models.detector.detnet_hw import train_float as train

    return train(cfg)


def train_qat(cfg, float_model: DetNet) -> tuple[QuantDetNetIID, float]:
    """QAT of the hardware form, initialised from ``float_model``, DetNet's loss, Adam.

    The mix layers (DetNet's fixed ``mix * new + (1 - mix) * old``) stay frozen at their
    initial weights, with biases that fit the *quantized* weights (:func:`symmetric_mix_bias`),
    and only the rest is trained. Measured (docs/detnet-iid.md "The BER target", L = 10, 800
    steps from the 3,000-step mix-0.1 float model, 100,000 bits at 12 dB): the integer model's
    BER is 4.87e-3 this way against 8.85e-3 with the mixes trained (the loss fell while the BER
    rose) and 5.99e-3 for the float DetNet."""
    from quant.recipes import Recipe

    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    model = QuantDetNetIID(
        Recipe(cfg.bits, per_channel_weights=cfg.per_channel_weights), _shape(cfg)
    )
    from_float(model, float_model)
    symmetric_mix_bias(model, float_model.shape.mix)
    res = qat(
        model,
        cfg,
        cfg.qat_steps,
        cfg.qat_lr,
        cfg.seed + 1,
        freeze_mix=True,
        description=f"QAT {cfg.name}",
    )
    return model, res.mean_recent_loss


def meta(cfg, model, loss: float) -> dict:
    """Checkpoint metadata (float: DetNet's; QAT: the hardware form's)."""
    from models.detector.detnet_hw import detnet_train_config
    from models.detector.detnet_train import detnet_meta

    extra = {"variant": cfg.name, "final_train_loss": loss, "qphy_config": cfg.to_json()}
    if cfg.bits is None:
        return detnet_meta(detnet_train_config(cfg), **extra)
    return {
        "arch": "detnet_iid_hw",
        "bits": cfg.bits.tag,
        "layers": cfg.layers,
        "state_bits": model.state_bits,
        "per_channel_weights": cfg.per_channel_weights,
        **extra,
    }


def load(cfg, path: Path):
    """The float DetNet or the QAT hardware form of ``cfg`` from ``path``, with the
    checkpoint's meta.

    Raises:
        CheckpointError: Missing, unreadable, foreign, or another variant's file.
    """
    from models.detector.detnet_train import load_detnet
    from qphy.errors import CheckpointError
    from quant import checkpoint
    from quant.recipes import Recipe

    if cfg.bits is None:
        model, m = load_detnet(path)
    else:
        cmd = f"qphy train detector --arch detnet --channel iid --bits {cfg.bits.tag}"
        payload = checkpoint.read(path, cmd)
        m = payload["meta"]
        if m.get("arch") != "detnet_iid_hw" or m.get("bits") != cfg.bits.tag:
            raise CheckpointError(f"{path} holds {m.get('variant')}, not {cfg.name}")
        recipe = Recipe(cfg.bits, per_channel_weights=m["per_channel_weights"])
        model = QuantDetNetIID(recipe, _shape(cfg), m["state_bits"])
        checkpoint.load_state(model, payload, path, cfg.name)
    if m.get("variant") != cfg.name:
        raise CheckpointError(f"{path} holds {m.get('variant')}, not {cfg.name}")
    return model.eval(), m


def golden_inputs(cfg, model: QuantDetNetIID, n: int) -> np.ndarray:
    """``n`` host inputs ``[H^T y | vec(H^T H)]`` of fresh channels (SNR 8..13 dB); the second
    half scaled 1.5..4x beyond the input quantizer's full scale (clipping exercised)."""
    from models.detector.data import detection_config
    from models.detector.mimo import sample_numpy, uniform_snr_db
    from quant.recipes import INPUT_BITS

    rng = np.random.default_rng(cfg.seed + 7)
    snr = uniform_snr_db(n, 8.0, 13.0, rng)
    b = sample_numpy(detection_config(cfg), n, snr, rng)
    u = host_inputs(b.y, b.H)
    half = n // 2
    scale = float(model.inp.act_quant.scale().detach().reshape(-1)[0])
    full = 2 ** (INPUT_BITS - 1) * scale
    peak = np.max(np.abs(u[half:]), axis=1, keepdims=True)
    u[half:] *= rng.uniform(1.5, 4.0, size=(n - half, 1)) * full / peak
    return u.astype(np.float32)


class _FloatDetector(torch.nn.Module):
    """The float DetNet as a ``u -> x_L`` map (u = host inputs), for the shared BER loop."""

    def __init__(self, det: DetNet):
        super().__init__()
        self.det = det

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        k = self.det.shape.k_tx
        hty, hth = u[:, :k], u[:, k:].reshape(-1, k, k) / GRAM_SCALE
        x = u.new_zeros(u.shape[0], k)
        v = u.new_zeros(u.shape[0], self.det.shape.v_dim)
        for layer in self.det.layers:
            x, v = layer(hty, hth, x, v)
        return x


def model_inputs(y: np.ndarray, h: np.ndarray) -> torch.Tensor:
    """The detectors' input of a BER chunk (:data:`.evaluate.InputFn`): the host inputs."""
    return torch.from_numpy(host_inputs(y, h))


def evaluate_detector(cfg, out_dir: Path, load_or_train, ckpt_dir: Path | None = None) -> dict:
    """BER of the float DetNet, the integer model (QAT form, the RTL's function) and the
    classical baselines; writes ber.json and ber.png. ``load_or_train`` is the family's
    (:func:`models.detector.jobs.load_or_train`, passed in: jobs routes here)."""
    from dataclasses import replace

    from models.detector.evaluate import evaluate_ber, snr_at_ber, write_ber

    float_cfg = replace(cfg, bits=None)
    float_model = _FloatDetector(load_or_train(float_cfg, ckpt_dir))
    qat_model = load_or_train(cfg, ckpt_dir)
    result = evaluate_ber(cfg, {"float": float_model, cfg.bits.tag: qat_model}, inputs=model_inputs)
    result["channel"] = cfg.channel
    for target in ("1e-2", "1e-3"):
        result[f"snr_db_at_ber_{target}"] = {
            name: snr_at_ber(result["snr_db"], curve, float(target))
            for name, curve in result["ber"].items()
        }
    title = f"DetNet L={cfg.layers} {cfg.bits.tag}, iid 30x20 BPSK"
    write_ber(result, Path(out_dir), title)
    return result
