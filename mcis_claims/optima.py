"""C3's optimized directions in one cell: the shared run, its convergence record, and where the optima lie.

`optimize_cell` runs `optimize.optimize_directions` on the cell's first bases at a radius chosen
from the cov-random arm, sweeps the optima over the radius schedule and reads their radius to the
threshold; C3 (sensitivity) and C3b (distinctness) both judge that one run (`OptimaRun`).
`optima_geometry` says where the optima lie: against each other, their random starts, the base
activation and the site's top principal components, each beside a random reference.

    run = optimize_cell(cell, max_bases=16, restarts=4, steps=20, lr=0.3, tol=0.1, window=5, radius_fraction=0.5)
    run.r_optimized, run.r_random   # (m,) radius to the threshold: optima vs cov-random, same m bases
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import directions
from .engine import sweep
from .optimize import OptimizedDirections, optimize_directions
from .readouts import median_crossing, radius_at_threshold

RANDOM_MEDIAN_ABS_COS = 0.6745  # median |N(0, 1)|: |cos| x sqrt(d) of random unit vectors, large d
# r_opt comes from float32 sweeps, whose last digits depend on the host's kernels; a few restarts of
# the ascent turn on a change that small (a step accepted on one host, rejected on another), so r_opt
# is rounded to 4 significant digits (moves it by < 0.05 %): hosts agree unless a value straddles a
# rounding boundary (odds ~1e-3)
R_OPT_DIGITS = 4


@dataclass(frozen=True)
class OptimaRun:
    """One cell's optimisation and the sweep of its optima, beside the cov-random arm on the same bases."""

    m: int  # bases optimised: the first m of the cell's
    random: object  # KindSweep of cov_random_mixture over all the cell's bases (cached, shared with C1/C2)
    r_random: np.ndarray  # (m,) per-base median radius to the threshold, cov-random
    censored_random: np.ndarray  # (m,) bool: that radius is only a lower bound
    r_opt: float  # the optimisation radius, absolute residual-norm units
    opt: OptimizedDirections  # (m, R, d) optima and their ascent
    swept: object  # SweepResult of the optima: kl (m, R, S) over the schedule
    r_optimized: np.ndarray  # (m,) per-base median radius to the threshold over the R optima
    censored_optimized: np.ndarray  # (m,) bool
    seconds: float  # optimisation and the sweep of its optima (timing: never hashed)

    @property
    def converged_fraction(self) -> float:
        return float(self.opt.converged.float().mean())

    def median_curve(self) -> np.ndarray:
        """(m, S) median KL over each base's R optima, for figures."""
        return self.swept.kl.median(dim=1).values.numpy()


def optimize_cell(cell, *, max_bases: int, restarts: int, steps: int, lr: float, tol: float, window: int,
                  radius_fraction: float, tag: str = "C3") -> OptimaRun:
    """Optimise from `restarts` random starts on the first `max_bases` bases at r_opt = radius_fraction x
    the median cov-random radius to --kl-threshold of those bases; sweep the optima; read their radii.

    The random starts come from `cell.generator(tag, "restarts")`.
    """
    threshold = cell.config.kl_threshold
    m = min(max_bases, len(cell.prompts))
    tokens = cell.prompts.tokens[:m]
    random = cell.sweep_kind(directions.cov_random_mixture())  # cached, shared with C1/C2
    r_random, censored_random = random.per_base_radius(threshold, first=m)
    started = time.perf_counter()  # C3's own cost: optimisation and the sweep of its optima
    r_opt = round_significant(radius_fraction * float(np.median(r_random)) * cell.stats.median_norm, R_OPT_DIGITS)
    opt = optimize_directions(cell.model, cell.layer, tokens, r_opt, restarts=restarts, steps=steps, lr=lr,
                              tol=tol, window=window, generator=cell.generator(tag, "restarts"))
    swept = sweep(cell.model, cell.layer, tokens, opt.directions, cell.radii_abs)  # kl (m, R, S)
    r_optimized, censored_optimized = median_crossing(radius_at_threshold(swept.kl, cell.radii_rel, threshold))
    return OptimaRun(m=m, random=random, r_random=r_random, censored_random=censored_random, r_opt=r_opt, opt=opt,
                     swept=swept, r_optimized=r_optimized, censored_optimized=censored_optimized,
                     seconds=time.perf_counter() - started)


def round_significant(x: float, digits: int) -> float:
    """x to `digits` significant digits (0 stays 0)."""
    return float(f"{x:.{digits - 1}e}")


def convergence_record(opt: OptimizedDirections) -> dict:
    """Every restart's steps and last relative change, (n, R) lists, with the criterion."""
    return {
        "criterion": f"relative KL rise over the last {opt.window} steps < {opt.tol:g}, at most {opt.steps} steps",
        "precision": opt.precision,  # what the ascent computed in (float64 by default)
        "converged_fraction": float(opt.converged.float().mean()),
        "steps_per_restart": opt.steps_taken.tolist(),
        "last_relative_change_per_restart": [[float(f"{v:.4g}") for v in row] for row in
                                             opt.last_relative_change.tolist()],
        "steps_median": float(opt.steps_taken.double().median()),
        "steps_run": int(opt.trajectory.shape[0] - 1),
        "last_relative_change_median": float(opt.last_relative_change.median()),
        "last_relative_change_max": float(opt.last_relative_change.max()),
    }


def kl_spread(opt: OptimizedDirections) -> dict:
    """Over each base's R optima, max KL / min KL at r_opt: far above 1, the restarts found unequal optima."""
    final_kl = opt.kl.double()
    spread = (final_kl.max(dim=1).values / final_kl.min(dim=1).values.clamp_min(1e-12)).numpy()  # (m,)
    return {"median": float(np.median(spread)), "max": float(spread.max())}


def kl_record(opt: OptimizedDirections) -> dict:
    """KL at the optimisation radius: random starts vs optima, the median trajectory, the spread over restarts."""
    return {
        "kl_at_optimisation_radius": {"random_start_median": float(opt.initial_kl.median()),
                                      "optimized_median": float(opt.kl.median())},
        "kl_trajectory_median": opt.trajectory.flatten(1).median(dim=1).values.tolist(),
        "optima_kl_spread_max_over_min": kl_spread(opt),
    }


def pair_angles_degrees(u: torch.Tensor) -> np.ndarray:
    """(n, R, d) unit directions -> (n, R(R-1)/2) angles between each base's pairs, as lines, in degrees."""
    gram = (u.double() @ u.double().transpose(1, 2)).abs().clamp_max(1.0)
    i, j = torch.triu_indices(u.shape[1], u.shape[1], offset=1)
    return torch.rad2deg(torch.arccos(gram[:, i, j])).numpy()


def top_pc_share(u: torch.Tensor, cov: torch.Tensor, k: int) -> np.ndarray:
    """(..., d) unit directions -> (...,) share of each direction's squared norm in the top-k eigenvectors of cov."""
    _, vectors = torch.linalg.eigh(cov.double())  # ascending eigenvalues
    top = vectors[:, -k:]  # (d, k)
    return (u.double() @ top).pow(2).sum(-1).numpy()


def start_cosine(opt: OptimizedDirections) -> float:
    """Median |cos(u_opt, u_start)|: near 1, the optima never left their random starts."""
    return float((opt.directions.double() * opt.init.double()).sum(-1).abs().median())


@dataclass(frozen=True)
class OptimaGeometry:
    """Where a cell's optima lie (C3b's record); `start_cos` is its health check."""

    start_cos: float  # median |cos(u_opt, u_start)|
    details: dict  # angles, |cos| between optima, with the base and the top PCs, spread of KL over restarts


def optima_geometry(opt: OptimizedDirections, base: torch.Tensor, cov_random: torch.Tensor, site, *,
                    top_pcs: int, random_q99: float) -> OptimaGeometry:
    """base: (m, d) the bases' activations; cov_random: (m, K, d) cov-random directions of the same bases;
    site: the SiteStats (cov, n_fit). Each read-out beside the same for random unit vectors or cov-random ones."""
    u = opt.directions.double()  # (m, R, d)
    d = u.shape[-1]
    abs_cos = opt.pairwise_abs_cosine().double().numpy()  # (m, R(R-1)/2)
    x = base.double()
    cos_base = (u @ (x / x.norm(dim=-1, keepdim=True))[..., None]).squeeze(-1).abs().numpy()  # (m, R)
    cov_random = cov_random.double()
    cos_base_random = (cov_random @ (x / x.norm(dim=-1, keepdim=True))[..., None]).squeeze(-1).abs().numpy()
    start_cos = start_cosine(opt)
    random_cos = RANDOM_MEDIAN_ABS_COS / math.sqrt(d)
    return OptimaGeometry(start_cos=start_cos, details={
        "angle_degrees": {"median_per_base": np.median(pair_angles_degrees(u), axis=1).tolist(),
                          "random_unit_vectors_median": math.degrees(math.acos(random_cos))},
        "pairwise_abs_cos": {
            "median": float(np.median(abs_cos)), "max": float(abs_cos.max()),
            "random_unit_vectors_median_0.674_over_sqrt_d": random_cos,
            "median_times_sqrt_d": float(np.median(abs_cos) * math.sqrt(d)),
            "fraction_beyond_random_q99": float(np.mean(abs_cos > random_q99 / math.sqrt(d)))},
        "abs_cos_optimum_vs_start_median": start_cos,
        "abs_cos_with_base": {"optimized_median": float(np.median(cos_base)),
                              "cov_random_median": float(np.median(cos_base_random)),
                              "random_unit_vectors_median": random_cos},
        f"top{top_pcs}_pc_share": {"optimized_median": float(np.median(top_pc_share(u, site.cov, top_pcs))),
                                   "cov_random_median": float(np.median(top_pc_share(cov_random, site.cov, top_pcs))),
                                   "isotropic_expectation": top_pcs / d,
                                   "pc_source": "eigenvectors of the fitted covariance cell.stats.cov "
                                                f"({site.n_fit} fit prompts)"},
        "optima_kl_spread_max_over_min": kl_spread(opt),
    })
