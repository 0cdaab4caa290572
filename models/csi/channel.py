"""CSI-feedback data generation: angular-delay channel matrices from 3GPP TR 38.901.

The config, data set, scaling and NMSE are :mod:`models.csi.data`;
:func:`models.csi.store.load_or_generate` calls :func:`generate` here on a cache miss.

Channel (sionna-no-rt 2.2, pure PyTorch; TR 38.901 v19.2 tables):
    * ``INDOOR``: InH (open office) at 5.3 GHz, the carrier of the COST2100 indoor set that
      CsiNet used. One ceiling BS (3 m) and one UE (1 m) dropped uniformly in a 120-degree
      sector of radius ~11.5 m (ISD 20 m, >= 1 m from the BS).
    * ``OUTDOOR``: UMi street canyon at 3.5 GHz, outdoor UEs only (no O2I loss, 1.5 m high),
      dropped uniformly in the sector of a 10 m high BS (ISD 200 m, >= 10 m from the BS).
    Drops come from sionna's ``gen_single_sector_topology`` (one topology per sample, so
    every sample has its own UE position, LoS state and large-scale parameters). Downlink, the
    BS has a horizontal 1 x 32 panel (ULA) of single-polarised 38.901-pattern elements at half
    a wavelength; the UE has one omni antenna. The carrier can be overridden.

Processing per sample (CsiNet convention):
    1. Frequency response H[a, k] = sum_p c[a, p] exp(-j 2 pi f_k tau_p) on N = 1024
       subcarriers, f_k = k * subcarrier_spacing (k = 0 .. N-1, offsets from the lowest
       subcarrier). 30 kHz spacing: 30.72 MHz band, delay tap 32.6 ns, 32 taps = 1.04 us.
    2. IFFT over subcarriers to the delay domain; keep the first ``n_delay_taps`` taps.
    3. DFT over antennas to the angular domain, ``fftshift`` so broadside sits in the middle
       (the sector's UEs then form one contiguous angular region instead of wrapping around).
    4. Per-sample scaling to [0, 1] (:func:`models.csi.data.scale_to_unit`, see there).

Steps 1 and 2 are computed in closed form (:func:`delay_taps`): the IFFT of a sum of complex
exponentials restricted to the kept taps is a Dirichlet kernel per path and tap, one batched
matmul of size (taps x paths). This is exactly ``ifft(frequency_response(...))[..., :taps]``
(checked by the tests against :func:`frequency_response`, the explicit batched matmul), and
far cheaper than sionna's ``cir_to_ofdm_channel`` plus a 1024-point IFFT. The CIR generation in
sionna dominates the run time.

Energy beyond the kept taps (long delays, and the leakage of fractional delays) is dropped, as
in CsiNet; :func:`models.csi.data.csi_statistics` reports how much is kept.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from models.csi.data import CsiDataConfig, CsiDataset, Scenario, scale_to_unit

# ---------------------------------------------------------------------------------------------
# Frequency response and delay taps from a CIR
# ---------------------------------------------------------------------------------------------


def frequency_response(
    coeffs: torch.Tensor, delays_s: torch.Tensor, n_subcarriers: int, subcarrier_spacing_hz: float
) -> torch.Tensor:
    """Channel frequency response by one batched matmul over paths.

    Args:
        coeffs: ``(B, A, P)`` complex path coefficients (antenna A, path P).
        delays_s: ``(B, P)`` path delays in seconds.
        n_subcarriers: N.
        subcarrier_spacing_hz: Spacing; f_k = k * spacing, k = 0 .. N-1.

    Returns:
        ``(B, A, N)`` complex64 response.
    """
    freqs = torch.arange(n_subcarriers, dtype=torch.float64) * subcarrier_spacing_hz
    # Cycles mod 1 in float64 keep the float32 phase exact for long delays.
    cycles = torch.remainder(delays_s.double()[:, :, None] * freqs, 1.0)
    phase = (-2.0 * math.pi * cycles).float()
    steer = torch.polar(torch.ones_like(phase), phase)  # (B, P, N)
    return torch.matmul(coeffs.to(torch.complex64), steer)


def delay_taps(
    coeffs: torch.Tensor,
    delays_s: torch.Tensor,
    n_subcarriers: int,
    subcarrier_spacing_hz: float,
    n_taps: int,
) -> torch.Tensor:
    """First ``n_taps`` of ``ifft(frequency_response(...))`` in closed form.

    ifft_k(sum_p c_p e^{-j 2 pi k df tau_p})[n] = sum_p c_p D(n / N - df tau_p) with the
    Dirichlet kernel D(x) = (1/N) sum_k e^{j 2 pi k x}
    = e^{j pi (N-1) x} sin(pi N x) / (N sin(pi x)), so the kept taps are one
    ``(taps x paths)`` matmul per sample.

    Args:
        coeffs: ``(B, A, P)`` complex path coefficients.
        delays_s: ``(B, P)`` path delays in seconds.
        n_subcarriers: N.
        subcarrier_spacing_hz: Subcarrier spacing.
        n_taps: Taps kept.

    Returns:
        ``(B, A, n_taps)`` complex64 delay-domain channel.
    """
    n = n_subcarriers
    taps = torch.arange(n_taps, dtype=torch.float64)
    x = taps[None, None, :] / n - delays_s.double()[:, :, None] * subcarrier_spacing_hz
    x = x - torch.round(x)  # D has period 1
    sin_x = torch.sin(math.pi * x)
    near_int = sin_x.abs() < 1e-12  # D -> 1 at integer x
    safe_sin = torch.where(near_int, torch.ones_like(x), sin_x)
    ratio = torch.where(near_int, 1.0, torch.sin(math.pi * n * x) / (n * safe_sin))
    kernel = torch.polar(ratio, math.pi * (n - 1) * x).to(torch.complex64)  # (B, P, taps)
    return torch.matmul(coeffs.to(torch.complex64), kernel)


def angular_delay(taps: torch.Tensor) -> torch.Tensor:
    """``(B, A, T)`` delay-domain channel -> ``(B, T, A)`` angular-delay matrix.

    DFT over antennas, shifted so broadside is the middle bin; rows are delay taps.
    """
    ang = torch.fft.fftshift(torch.fft.fft(taps, dim=1), dim=1)
    return ang.transpose(1, 2).contiguous()


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


class _Generator:
    """sionna objects for one config; ``cir(batch)`` draws fresh drops."""

    def __init__(self, cfg: CsiDataConfig):
        from sionna.phy.channel.tr38901 import InH, PanelArray, UMi

        fc = cfg.carrier_frequency_hz
        common = {"precision": "single", "device": "cpu"}
        bs = PanelArray(
            num_rows_per_panel=1,
            num_cols_per_panel=cfg.n_antennas,
            polarization="single",
            polarization_type="V",
            antenna_pattern="38.901",
            carrier_frequency=fc,
            **common,
        )
        ue = PanelArray(
            num_rows_per_panel=1,
            num_cols_per_panel=1,
            polarization="single",
            polarization_type="V",
            antenna_pattern="omni",
            carrier_frequency=fc,
            **common,
        )
        if cfg.scenario is Scenario.OUTDOOR:
            self.channel = UMi(
                carrier_frequency=fc, o2i_model="low", ut_array=ue, bs_array=bs,
                direction="downlink", **common,
            )  # fmt: skip
            self.drop = {"scenario": "umi", "indoor_probability": 0.0}
        else:
            self.channel = InH(
                carrier_frequency=fc, ut_array=ue, bs_array=bs, direction="downlink",
                indoor_scenario="open", **common,
            )  # fmt: skip
            # sionna has no single-BS InH drop helper: a UMi-style sector with indoor-office
            # geometry (ceiling BS at 3 m, UE at 1 m, ISD 20 m as in TR 38.901 Table 7.2-2).
            self.drop = {
                "scenario": "umi", "isd": 20.0, "bs_height": 3.0, "min_ut_height": 1.0,
                "max_ut_height": 1.0, "indoor_probability": 1.0, "min_bs_ut_dist": 1.0,
                "min_ut_velocity": 0.0, "max_ut_velocity": 0.0,
            }  # fmt: skip

    def cir(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(coeffs (B, A, P), delays_s (B, P))`` of ``batch`` fresh drops."""
        from sionna.phy.channel import gen_single_sector_topology

        topo = gen_single_sector_topology(
            batch_size=batch, num_ut=1, precision="single", device="cpu", **self.drop
        )
        # sionna refuses a new batch size on a set topology without a reset.
        self.channel.reset_topology()
        self.channel.set_topology(*topo)
        a, tau = self.channel(num_time_samples=1, sampling_frequency=1.0)
        # a: [B, rx=1, rx_ant=1, tx=1, tx_ant=A, P, t=1]; tau: [B, rx=1, tx=1, P].
        # Padded (absent) paths have a == 0, so their delays do not matter.
        return a[:, 0, 0, 0, :, :, 0], tau[:, 0, 0, :]


def generate(cfg: CsiDataConfig, show_progress: bool = True) -> CsiDataset:
    """Generate a set (no cache). Global torch RNG state is left untouched.

    sionna's own generators are re-seeded from ``cfg.seed`` and set back to their previous
    seed afterwards (which restarts, not restores, their streams).
    """
    from rich.progress import Progress
    from sionna.phy import config as sionna_config

    previous_seed = sionna_config.seed
    chunks: list[np.ndarray] = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        sionna_config.seed = cfg.seed
        try:
            gen = _Generator(cfg)
            # A disabled rich Progress still prints a blank line: only build one when shown.
            progress = Progress(transient=True) if show_progress else None
            with progress if progress is not None else contextlib.nullcontext():
                label = f"CSI {cfg.scenario.value}"
                task = progress.add_task(label, total=cfg.n_samples) if progress else None
                done = 0
                while done < cfg.n_samples:
                    batch = min(cfg.batch_size, cfg.n_samples - done)
                    coeffs, delays = gen.cir(batch)
                    taps = delay_taps(
                        coeffs, delays, cfg.n_subcarriers, cfg.subcarrier_spacing_hz,
                        cfg.n_delay_taps,
                    )  # fmt: skip
                    chunks.append(angular_delay(taps).numpy())
                    done += batch
                    if progress is not None:
                        progress.update(task, advance=batch)
        finally:
            sionna_config.seed = previous_seed
    x, peak = scale_to_unit(np.concatenate(chunks))
    return CsiDataset(x, peak, cfg)
