"""The fixed-channel DetNet as a plain ReLU MLP that FINN compiles (the detector target's
``--arch detnet``).

Why: a DetNet layer needs ``H^T H x_hat`` (two run-time values multiplied) and two skip paths
(``0.9 * old``) that fork and re-join the stream. With a FIXED channel ``H^T`` and ``H^T H``
are constant matrices, so every DetNet layer is affine in ``[y, x_{l-1}, v_{l-1}]``; the skip
paths are carried through the ReLUs as pairs ``(ReLU(s), ReLU(-s))`` (``s = ReLU(s) -
ReLU(-s)`` exactly) and the soft sign as ``psi_t(a) = -1 + (ReLU(a + t) - ReLU(a - t)) / |t|``.
So DetNet with L layers becomes an exact chain of 2L + 1 Linear layers with ReLU between them
(no fork, no add, no elementwise product): the streams FINN's RTL MVAU + thresholds can build.

Segments of the chain (K symbols, V = v_dim, Hd = hidden, N receive; ``q = H^T y``):

    A_1:  y                               -> [z_1 (Hd), q+-]
    B_1:  [z_1, q+-]                      -> S_1 = [q+-, r1_1, r2_1, v_1+-]
    A_l:  S_{l-1}                         -> [z_l (Hd), q+-, x_{l-1}+-, v_{l-1}+-]
    B_l:  [z_l, q+-, x_{l-1}+-, v_{l-1}+-]-> S_l = [q+-, xp+- (= x_{l-1}), r1_l, r2_l, v_l+-]
    out:  S_L                             -> x_L (K, no ReLU)

with ``r1 = ReLU(a + t)``, ``r2 = ReLU(a - t)``, ``a = W2 z + b2`` and
``x_l = mix * (-1 + (r1 - r2) / |t|) + (1 - mix) * x_{l-1}``, affine in ``S_l``.
:func:`to_mlp` builds the float chain (``MLP``) from a trained :class:`.detnet.DetNet`
and the channel; it equals DetNet's last output up to float rounding (tested).
:func:`equalize` then rescales every ReLU channel (``ReLU(c a) = c ReLU(a)``, c > 0, the next
layer's column divided by c; exact in float) so their ranges match: one per-tensor activation
scale then serves all of them. :class:`models.detector.qat.QuantMLP` is its QAT form.

Varying channel: FINN (finn-plus 1.6.1) has no RTL layer that multiplies two streams (its
MVAU takes constant weights; a dynamic MatMul exists only as an HLS layer for attention on
Versal, which needs Vitis HLS) -- so with a channel that changes per vector the host must
compute ``H^T y`` and ``H^T H`` (and the product ``H^T H x_hat`` of every layer, which depends
on the previous layer's output): the FPGA could only take the per-layer MLPs. See README.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.detector.detnet import DetNet
from qphy.errors import ConfigError


class MLP(nn.Module):
    """Float chain ``Linear -> ReLU -> ... -> Linear`` (no ReLU after the last one)."""

    def __init__(self, sizes: list[tuple[int, int]]):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(sizes):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)

    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [(m.in_features, m.out_features) for m in self.linears()]


class _Affine:
    """An affine map under construction: rows (outputs) and columns (inputs) named segments."""

    def __init__(self, in_segs: list[tuple[str, int]], out_segs: list[tuple[str, int]]):
        self.i = _offsets(in_segs)
        self.o = _offsets(out_segs)
        self.w = np.zeros((sum(n for _, n in out_segs), sum(n for _, n in in_segs)))
        self.b = np.zeros(self.w.shape[0])

    def add(self, out: str, inp: str, m: np.ndarray) -> None:
        (o0, o1), (i0, i1) = self.o[out], self.i[inp]
        self.w[o0:o1, i0:i1] += m

    def bias(self, out: str, b: np.ndarray | float) -> None:
        o0, o1 = self.o[out]
        self.b[o0:o1] += b

    def add_pair(self, out: str, inp: str, m: np.ndarray, sign: float = 1.0) -> None:
        """``out += sign * m @ (inp+ - inp-)``: inp is a pair segment ``inp+`` / ``inp-``."""
        self.add(out, inp + "+", sign * m)
        self.add(out, inp + "-", -sign * m)

    def pair_rows(self, out: str, rows: _Affine) -> None:
        """Writes ``out+ = rows``, ``out- = -rows`` (rows: the affine map of the value)."""
        for sgn, suffix in ((1.0, "+"), (-1.0, "-")):
            o0, o1 = self.o[out + suffix]
            self.w[o0:o1] += sgn * rows.w
            self.b[o0:o1] += sgn * rows.b


def _offsets(segs: list[tuple[str, int]]) -> dict[str, tuple[int, int]]:
    out, at = {}, 0
    for name, n in segs:
        out[name] = (at, at + n)
        at += n
    return out


def _pair(name: str, n: int) -> list[tuple[str, int]]:
    return [(name + "+", n), (name + "-", n)]


def to_mlp(model: DetNet, h: np.ndarray) -> MLP:
    """The exact ReLU-MLP form of ``model`` for the fixed channel ``h`` (N x K), see module doc.

    Raises:
        ConfigError: ``h`` does not match the model's sizes.
    """
    s = model.shape
    n, k, v, hd, mix = s.n_rx, s.k_tx, s.v_dim, s.hidden, float(s.mix)
    h = np.asarray(h, dtype=np.float64)
    if h.shape != (n, k):
        raise ConfigError(f"DetNet {n}x{k} needs a channel of shape ({n}, {k}), got {h.shape}")
    gram = h.T @ h
    mats: list[_Affine] = []
    s_segs: list[tuple[str, int]] = [("y", n)]
    x_prev_in_s = False  # does S hold x_{l-1} (layer >= 2)?
    prev_t = 1.0  # the previous layer's soft-sign threshold
    for li, layer in enumerate(model.layers):
        w1 = layer.fc.weight.detach().double().numpy()
        b1 = layer.fc.bias.detach().double().numpy()
        wq, wx, wg, wv = w1[:, :k], w1[:, k : 2 * k], w1[:, 2 * k : 3 * k], w1[:, 3 * k :]
        w2 = layer.out_x.weight.detach().double().numpy()
        b2 = layer.out_x.bias.detach().double().numpy()
        w3 = layer.out_v.weight.detach().double().numpy()
        b3 = layer.out_v.bias.detach().double().numpy()
        t = float(layer.t.detach())
        first = li == 0
        # ---- A_l: z_l and the pass-throughs -------------------------------------------------
        a_out = [("z", hd), *_pair("q", k)]
        if not first:
            a_out += [*_pair("x", k), *_pair("v", v)]
        a = _Affine(s_segs, a_out)
        if first:
            q_rows = _Affine(s_segs, [("val", k)])
            q_rows.add("val", "y", h.T)
            a.add("z", "y", wq @ h.T)
            a.pair_rows("q", q_rows)
        else:
            x_rows = _x_of_s(s_segs, k, mix, prev_t, x_prev_in_s)
            a.add_pair("z", "q", wq)
            wxg = wx + wg @ gram
            a.w[slice(*a.o["z"])] += wxg @ x_rows.w
            a.bias("z", wxg @ x_rows.b)
            a.add_pair("z", "v", wv)
            for side in ("+", "-"):
                a.add("q" + side, "q" + side, np.eye(k))
                a.add("v" + side, "v" + side, np.eye(v))
            a.pair_rows("x", x_rows)
        a.bias("z", b1)
        mats.append(a)
        # ---- B_l: soft-sign halves, v_l, pass-throughs ----------------------------------------
        b_in = a_out
        s_segs = [*_pair("q", k)]
        if not first:
            s_segs += _pair("xp", k)
        s_segs += [("r1", k), ("r2", k), *_pair("v", v)]
        b = _Affine(b_in, s_segs)
        b.add("r1", "z", w2)
        b.bias("r1", b2 + t)
        b.add("r2", "z", w2)
        b.bias("r2", b2 - t)
        v_rows = _Affine(b_in, [("val", v)])
        v_rows.add("val", "z", mix * w3)
        v_rows.bias("val", mix * b3)
        if not first:
            v_rows.add_pair("val", "v", (1.0 - mix) * np.eye(v))
        b.pair_rows("v", v_rows)
        for side in ("+", "-"):
            b.add("q" + side, "q" + side, np.eye(k))
            if not first:
                b.add("xp" + side, "x" + side, np.eye(k))
        mats.append(b)
        prev_t = t
        x_prev_in_s = not first
    out = _x_of_s(s_segs, k, mix, prev_t, x_prev_in_s)
    mats.append(out)
    mlp = MLP([(m.w.shape[1], m.w.shape[0]) for m in mats])
    with torch.no_grad():
        for lin, m in zip(mlp.linears(), mats, strict=True):
            lin.weight.copy_(torch.from_numpy(m.w))
            lin.bias.copy_(torch.from_numpy(m.b))
    return mlp


def _x_of_s(s_segs: list[tuple[str, int]], k: int, mix: float, t: float, has_xp: bool) -> _Affine:
    """``x_l = mix * (-1 + (r1 - r2) / |t|) + (1 - mix) * x_{l-1}`` as an affine map of S_l."""
    x = _Affine(s_segs, [("val", k)])
    x.add("val", "r1", mix / abs(t) * np.eye(k))
    x.add("val", "r2", -mix / abs(t) * np.eye(k))
    x.bias("val", -mix)
    if has_xp:
        x.add_pair("val", "xp", (1.0 - mix) * np.eye(k))
    return x


@torch.no_grad()
def equalize(mlp: MLP, y: torch.Tensor, percentile: float = 99.9) -> list[np.ndarray]:
    """Rescales every hidden ReLU channel so its ``percentile`` over ``y`` is 1 (in place).

    ``ReLU(c * a) = c * ReLU(a)`` for c > 0, and the next layer's input column is divided by c:
    the network function is unchanged (up to rounding). Channels that never fire keep c = 1.

    Returns:
        The factor c of each hidden layer's channels.
    """
    lins = mlp.linears()
    factors = []
    act = y.double()
    for i, lin in enumerate(lins[:-1]):
        pre = act @ lin.weight.double().T + lin.bias.double()
        post = torch.relu(pre)
        hi = torch.quantile(post, percentile / 100.0, dim=0).numpy()
        c = np.where(hi > 1e-9, 1.0 / np.maximum(hi, 1e-9), 1.0)
        ct = torch.from_numpy(c)
        lin.weight.mul_(ct[:, None].to(lin.weight.dtype))
        lin.bias.mul_(ct.to(lin.bias.dtype))
        nxt = lins[i + 1]
        nxt.weight.div_(ct[None, :].to(nxt.weight.dtype))
        act = post * ct
        factors.append(c)
    return factors


# ---------------------------------------------------------------------------------------------
# The detector target's DetNet: float training, MLP form, QAT, checkpoints
# ---------------------------------------------------------------------------------------------

#: Vectors (SNR 7..14 dB) on which :func:`equalize` measures the channel ranges.
EQUALIZE_VECTORS = 4000


def detnet_train_config(cfg):
    """The :class:`.detnet_train.DetNetTrainConfig` of a detector-target QuantConfig."""
    from models.detector.data import detection_config
    from models.detector.detnet import DetNetShape
    from models.detector.detnet_train import DetNetTrainConfig

    return DetNetTrainConfig(
        detection=detection_config(cfg),
        shape=DetNetShape(n_layers=cfg.layers, mix=cfg.detnet_mix),
        steps=cfg.float_steps,
        batch=cfg.batch_size,
        lr=cfg.float_lr,
        snr_low_db=cfg.train_snr_db_min,
        snr_high_db=cfg.train_snr_db_max,
        seed=cfg.seed,
    )


def fixed_h(cfg) -> np.ndarray:
    from models.detector.data import detection_config
    from models.detector.mimo import fixed_channel

    return fixed_channel(detection_config(cfg))


def float_mlp(cfg, model: DetNet) -> MLP:
    """The float DetNet of ``cfg`` as its exact MLP form for the fixed channel (y -> x_L)."""
    return to_mlp(model, fixed_h(cfg)).float().eval()


def equalized_mlp(cfg, model: DetNet) -> MLP:
    """:func:`float_mlp`, range-equalised on seeded received vectors (SNR 7..14 dB)."""
    from models.detector.data import detection_config
    from models.detector.mimo import sample_numpy, uniform_snr_db

    rng = np.random.default_rng(cfg.seed + 11)
    snr = uniform_snr_db(EQUALIZE_VECTORS, cfg.train_snr_db_min, cfg.train_snr_db_max, rng)
    y = sample_numpy(detection_config(cfg), EQUALIZE_VECTORS, snr, rng).y
    mlp = to_mlp(model, fixed_h(cfg))
    equalize(mlp.double(), torch.from_numpy(y))
    return mlp.float().eval()


def train_float(cfg) -> tuple[DetNet, float]:
    """Float DetNet of ``cfg`` (fixed channel) through :func:`.detnet_train.train_detnet`."""
    from models.detector.detnet_train import train_detnet

    torch.set_num_threads(cfg.torch_threads)
    model, res = train_detnet(detnet_train_config(cfg), description=f"{cfg.name} float")
    return model.eval(), res.mean_recent_loss


def train_qat(cfg, float_model: DetNet):
    """QAT of the MLP form (initialised from the equalised exact form), MSE to the symbols."""
    from models.detector.qat import QuantMLP
    from models.detector.train import fit_detector
    from quant.recipes import Recipe

    torch.manual_seed(cfg.seed)
    mlp = equalized_mlp(cfg, float_model)
    model = QuantMLP(Recipe(cfg.bits, per_channel_weights=cfg.per_channel_weights), mlp.sizes)
    model.load_linears(mlp.linears())
    return model, fit_detector(model, cfg, cfg.qat_steps, cfg.qat_lr, f"QAT {cfg.name}")


def meta(cfg, model, loss: float) -> dict:
    """Checkpoint metadata of a detector-target DetNet (float: DetNet; QAT: its MLP form)."""
    from models.detector.detnet_train import detnet_meta

    extra = {"variant": cfg.name, "final_train_loss": loss, "qphy_config": cfg.to_json()}
    if cfg.bits is None:
        return detnet_meta(detnet_train_config(cfg), **extra)
    return {
        "arch": "detnet_mlp",
        "bits": cfg.bits.tag,
        "sizes": [[m.in_features, m.out_features] for m in model.linears()],
        "per_channel_weights": cfg.per_channel_weights,
        **extra,
    }


def load(cfg, path):
    """The float DetNet or the QAT MLP of ``cfg`` from ``path``, with the checkpoint's meta.

    Raises:
        CheckpointError: Missing, unreadable, foreign, or another variant's file.
    """
    from models.detector.detnet_train import load_detnet
    from models.detector.qat import QuantMLP
    from qphy.errors import CheckpointError
    from quant import checkpoint
    from quant.recipes import Recipe

    if cfg.bits is None:
        model, m = load_detnet(path)
    else:
        payload = checkpoint.read(path, f"qphy train detector --arch detnet --bits {cfg.bits.tag}")
        m = payload["meta"]
        if m.get("arch") != "detnet_mlp" or m.get("bits") != cfg.bits.tag:
            raise CheckpointError(f"{path} holds {m.get('variant')}, not {cfg.name}")
        recipe = Recipe(cfg.bits, per_channel_weights=m["per_channel_weights"])
        model = QuantMLP(recipe, [tuple(s) for s in m["sizes"]])
        checkpoint.load_state(model, payload, path, cfg.name)
    if m.get("variant") != cfg.name:
        raise CheckpointError(f"{path} holds {m.get('variant')}, not {cfg.name}")
    return model.eval(), m
