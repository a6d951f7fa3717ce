"""An MLP's read-offs of the residual stream, and how far a perturbation moves them (claim C9).

A unit i of the MLP of block L reads f_i(x) = w_i . norm(x), norm being that MLP's own input
norm (RMSNorm with gain and eps; GPT-2's LayerNorm with gain and bias). Its read-off direction,
the gain folded in, is unit(w_i * gain) (mean-centred for LayerNorm, which removes the mean).
For a linear read-off a random unit perturbation moves f_i by 1/sqrt(d) of what one of the same
size along that direction does, in RMS (tests/test_c9_orthogonality_math.py); the norm's
projection off the base changes that by a factor the linearisation below predicts.
Not to be confused with `readouts`, which summarises sweep curves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import stats
from .records import CurveSet


@dataclass(frozen=True)
class MlpReadoff:
    """The read-offs of one block's MLP, float64 on the CPU."""

    rows: torch.Tensor  # (d_mlp, d) what each unit multiplies its normed input by: gate rows, or GPT-2 c_fc rows
    norm: Callable[[torch.Tensor], torch.Tensor]  # x (..., d) -> what the MLP sees
    folded: torch.Tensor  # (d_mlp, d) read-off directions, gain folded in (centred for LayerNorm), not unit
    centred: bool  # the input norm removes the mean (GPT-2's LayerNorm)
    weight_name: str  # "c_fc" or "gate", for the record


def mlp_readoff(model, layer: int) -> MlpReadoff:
    """The MLP of block `layer` (the block the site feeds) as read-offs of the residual stream."""
    stack, weights = model.stack, model.stack.layers[layer]
    if model.arch == "gpt2":
        gain, bias = (t.double().cpu() for t in weights["ln2"])
        rows = weights["w_in"].double().cpu()
        folded = rows * gain
        folded = folded - folded.mean(-1, keepdim=True)  # LayerNorm removes the mean: only the centred part reads
        return MlpReadoff(rows, lambda x: F.layer_norm(x, (x.shape[-1],), gain, bias, stack.eps), folded,
                          centred=True, weight_name="c_fc")
    gain, rows = weights["norm2"].double().cpu(), weights["gate"].double().cpu()
    return MlpReadoff(rows, lambda x: gain * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + stack.eps),
                      rows * gain, centred=False, weight_name="gate")


@dataclass(frozen=True)
class UnitProbe:
    """K units per base prompt, with what they read at the clean base."""

    readoff: MlpReadoff
    x: torch.Tensor  # (n, d) float64 base activations
    w: torch.Tensor  # (n, K, d) each unit's row
    aligned: torch.Tensor  # (n, K, d) each unit's unit read-off direction
    clean: torch.Tensor  # (n, K) each unit's read-off at the clean base

    @property
    def cos_to_base(self) -> torch.Tensor:
        """(n, K) cosine of each read-off direction to its (uncentred) base."""
        return torch.einsum("nd,nkd->nk", self.x / self.x.norm(dim=-1, keepdim=True), self.aligned)

    def delta_aligned(self, r) -> torch.Tensor:
        """(n, K) |Δ read-off| of each unit when its base moves by r along the unit's own read-off direction."""
        return (torch.einsum("nkd,nkd->nk", self.readoff.norm(self.x[:, None] + r * self.aligned), self.w)
                - self.clean).abs()

    def delta_along(self, u, r) -> torch.Tensor:
        """(n, M, K) |Δ read-off| of every unit when its base moves by r along each of u (n, M, d)."""
        return (torch.einsum("nmd,nkd->nmk", self.readoff.norm(self.x[:, None] + r * u), self.w)
                - self.clean[:, None]).abs()


def sample_units(readoff: MlpReadoff, x: torch.Tensor, units: int, generator: torch.Generator) -> UnitProbe:
    """`units` distinct units per base, drawn with `generator` (one draw of (n, d_mlp) uniforms)."""
    n = x.shape[0]
    picked = torch.rand(n, readoff.rows.shape[0], generator=generator).argsort(-1)[:, :units]  # (n, K)
    w = readoff.rows[picked]
    aligned = readoff.folded[picked] / readoff.folded[picked].norm(dim=-1, keepdim=True)
    clean = torch.einsum("nd,nkd->nk", readoff.norm(x), w)
    return UnitProbe(readoff=readoff, x=x, w=w, aligned=aligned, clean=clean)


def isotropic_directions(n: int, m: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """(n, m, d) float64 unit directions, uniform on the sphere."""
    u = torch.randn(n, m, d, generator=generator, dtype=torch.float64)
    return u / u.norm(dim=-1, keepdim=True)


@dataclass(frozen=True)
class ReadoffCurves:
    """Per base and radius (n, R): RMS |Δ read-off| over units, aligned and random, and their RMS ratio."""

    radii_rel: np.ndarray  # (R,) x the site's median norm
    delta_aligned: np.ndarray  # (n, R) RMS over the K units
    delta_random: np.ndarray  # (n, R) RMS over (direction, unit)
    ratio: np.ndarray  # (n, R) RMS over (direction, unit) of Δ random / Δ aligned
    d: int

    @property
    def ratio_times_sqrt_d(self) -> np.ndarray:
        """(n, R) ~1 where random directions are near-orthogonal to the read-offs, as the maths says."""
        return self.ratio * math.sqrt(self.d)

    def curve_sets(self) -> list[CurveSet]:
        return [CurveSet("aligned with read-off", self.radii_rel, self.delta_aligned),
                CurveSet("isotropic", self.radii_rel, self.delta_random),
                CurveSet("isotropic x sqrt(d)", self.radii_rel, self.delta_random * math.sqrt(self.d))]


def readoff_by_radius(probe: UnitProbe, u: torch.Tensor, radii_rel: np.ndarray, median_norm: float) -> ReadoffCurves:
    """How far directions u (n, M, d) and the aligned ones move the probe's units, at each radius."""
    delta_aligned, delta_random, ratio = [], [], []
    for r in radii_rel * median_norm:
        da = probe.delta_aligned(r)  # (n, K)
        ratio_r, rms_r = readoff_ratio(probe, u, r, da)
        delta_aligned.append(da.pow(2).mean(-1).sqrt())
        delta_random.append(rms_r)
        ratio.append(ratio_r)
    delta_aligned, delta_random, ratio = (torch.stack(v, dim=-1).numpy() for v in (delta_aligned, delta_random, ratio))
    return ReadoffCurves(radii_rel=radii_rel, delta_aligned=delta_aligned, delta_random=delta_random, ratio=ratio,
                         d=probe.x.shape[-1])


def readoff_ratio(probe: UnitProbe, u, r, delta_aligned) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (ratio, rms), each (n,): RMS over (direction, unit) of |Δ read-off| along u (n, M, d) over the
    aligned change delta_aligned (n, K), and of |Δ read-off| itself."""
    delta = probe.delta_along(u, r)  # (n, M, K)
    return (delta / delta_aligned[:, None]).pow(2).mean((-2, -1)).sqrt(), delta.pow(2).mean((-2, -1)).sqrt()


def predicted_ratio_sqrt_d(x, aligned, cov, centred: bool) -> np.ndarray:
    """(n,) linearised ratio * sqrt(d) for directions with E[u u^T] = cov / tr(cov) (float64).

    The input norm removes the component along the (centred, for LayerNorm) base: P = I - x^ x^T.
    """
    d = x.shape[-1]
    xc = x - x.mean(-1, keepdim=True) if centred else x
    xh = xc / xc.norm(dim=-1, keepdim=True)  # (n, d)
    c = torch.einsum("nd,nkd->nk", xh, aligned)  # (n, K)
    pw = aligned - c[..., None] * xh[:, None]  # (n, K, d) P w
    quad = torch.einsum("nkd,de,nke->nk", pw, cov, pw) / torch.trace(cov)
    return (d * (quad / (1 - c.pow(2)).pow(2)).mean(-1)).sqrt().numpy()


def measured_readoffs(cell, spec, probe: UnitProbe, curves: ReadoffCurves, at: int, *, kinds,
                      directions_per_base: int) -> dict:
    """Descriptive, beside the property test: the same ratio * sqrt(d) for covariance-shaped directions.

    At the judged radius (index `at` of `curves`), for the probe's units and bases:
    `directions_per_base` directions of each of `kinds` (drawn with the cell's generator
    ("C9", repr(kind))), each kind's RMS read-off change over the isotropic one (read from
    `curves`) paired per base, and what the site's covariance predicts when linearised through
    the input norm.
    """
    x, aligned, d = probe.x, probe.aligned, probe.x.shape[-1]
    radius_abs = float(curves.radii_rel[at] * cell.stats.median_norm)
    delta_aligned_at = probe.delta_aligned(radius_abs)
    rms_isotropic = torch.from_numpy(curves.delta_random[:, at])  # (n,) swept already at this radius
    isotropic_ratio_sqrt_d = curves.ratio_times_sqrt_d[:, at]
    cov = cell.stats.cov.double()
    predicted_cov = predicted_ratio_sqrt_d(x, aligned, cov, centred=probe.readoff.centred)
    measured = {"isotropic": {"median_ratio_times_sqrt_d": float(np.median(isotropic_ratio_sqrt_d)),
                              "predicted_linearised": float(np.median(predicted_ratio_sqrt_d(
                                  x, aligned, torch.eye(d, dtype=torch.float64), centred=probe.readoff.centred))),
                              "median_rms_delta_readoff": float(rms_isotropic.median())}}
    for kind in kinds:
        v = kind.sample(cell.stats, x.shape[0], directions_per_base, cell.generator("C9", repr(kind)),
                        bases=x).double()  # (n, M, d) unit
        ratio_kind, rms_kind = readoff_ratio(probe, v, radius_abs, delta_aligned_at)
        versus = stats.paired_log_ratio(rms_kind.numpy(), rms_isotropic.numpy(), alternative="greater",
                                        documents=cell.documents, n_resamples=cell.config.n_resamples,
                                        random_state=cell.config.cell_seed(spec.id, cell.model_name, cell.layer,
                                                                           kind.name))
        measured[kind.name] = {
            "median_ratio_times_sqrt_d": float(np.median(ratio_kind.numpy() * math.sqrt(d))),
            "predicted_from_covariance_linearised": float(np.median(predicted_cov)),
            "median_rms_delta_readoff": float(rms_kind.median()),
            "over_isotropic_paired": {"median_ratio": versus.value,
                                      "ci": list(versus.confidence_interval), "ci_level": versus.confidence_level,
                                      "n": versus.n},
        }
    return measured


def orthogonality_details(cell, probe: UnitProbe, curves: ReadoffCurves, *, at: int, units: int,
                          directions_per_base: int, measured: dict) -> dict:
    """C9's record: the read-off, the ratio at the judged radius and at every radius, the norm's
    projection and its prediction, and the measured read-offs of `measured_readoffs`."""
    d = curves.d
    cos_x = probe.cos_to_base
    return {
        "d_model": d,
        "readoff": f"block {cell.layer} MLP {probe.readoff.weight_name} rows through its input norm",
        "units_per_base": units, "random_directions_per_base": directions_per_base,
        "radius_rel": float(curves.radii_rel[at]),
        "median_ratio_random_over_aligned": float(np.median(curves.ratio[:, at])),
        "one_over_sqrt_d": 1 / math.sqrt(d),
        "median_ratio_times_sqrt_d_by_radius": dict(zip(map(float, curves.radii_rel.round(4)),
                                                        map(float, np.median(curves.ratio_times_sqrt_d, axis=0)))),
        "median_abs_cos_readoff_vs_activation": float(cos_x.abs().median()),
        "predicted_ratio_times_sqrt_d_from_norm_projection": float(np.median(
            (1 / (1 - cos_x.pow(2))).mean(-1).sqrt().numpy())),  # linearised: sqrt(mean_k 1/(1 - c_k^2))
        "measured_readoffs_by_kind": measured,
        "measured_readoffs_note": "descriptive: RMS |Δ read-off| over (unit, direction) at radius_rel, "
                                  "ratio to the aligned change x sqrt(d); over_isotropic_paired is the per-base "
                                  "RMS change of the kind over the isotropic one (95% order-statistic interval)",
        "radius_unit": cell.radius_unit,
    }
