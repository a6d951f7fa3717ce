"""MLP sign flips beside KL: the threshold story's secondary read-outs (C5, details only, never judged).

The threshold story says a plateau ends where MLP units cross their thresholds. These read-outs
look for that in the sign flips a sweep records (`SweepResult.mlp_flips`, (n, K, S, blocks)),
summed over the later blocks:

old_flip_ratio        the former C5 statistic: flips real-other / cov-random at one radius
                      inside both median KL plateaus (chosen on KL, not flips)
flips_at_matched_kl   flips on real vs Gaussian bases where each curve first passes the threshold
alignment             per base, the step Spearman of KL vs flips against circular shifts of the
                      flip increments (which keep their values, not their place)
"""
from __future__ import annotations

import numpy as np

from . import directions, stats
from .errors import McisError
from .readouts import step_spearman


def old_flip_ratio(cell, kind, seed) -> dict:
    """The former C5 statistic: median (1 + flips) ratio real-other / `kind` at the largest radius
    inside both median KL plateaus (chosen on KL, not flips); flips summed over the later blocks."""
    from . import inside_plateaus  # the package's: cell.py's home for it may move

    real_other = cell.sweep_kind(directions.toward("real"))
    random = cell.sweep_kind(kind)
    index, ends, problem = inside_plateaus(real_other, random, threshold=cell.config.kl_threshold)
    a = 1.0 + real_other.result.mlp_flips.sum(-1).double().numpy()[:, :, index].mean(1)  # (n,)
    b = 1.0 + random.result.mlp_flips.sum(-1).double().numpy()[:, :, index].mean(1)
    estimate = stats.paired_log_ratio(a, b, alternative="less", sesoi=0.9, documents=cell.documents,
                                      n_resamples=cell.config.n_resamples, random_state=seed)
    return {"estimate": estimate.to_dict(), "fixed_radius": float(real_other.radii_rel[index]),
            "median_flips_at_radius": {"real_other": float(np.median(a - 1)), "cov_random": float(np.median(b - 1))},
            "problem": problem}


def flips_at_first_crossing(sweep, threshold) -> np.ndarray:
    """(n,) per base, the median over its K directions of the MLP sign flips (summed over later blocks)
    at each curve's first grid radius with KL >= threshold; NaN where no direction's curve crosses."""
    kl = sweep.kl.numpy()  # (n, K, S)
    flips = sweep.result.mlp_flips.sum(-1).double().numpy()  # (n, K, S)
    crossed = kl >= threshold
    first = crossed.argmax(-1)  # (n, K)
    at = np.take_along_axis(flips, first[..., None], -1)[..., 0]
    at = np.where(crossed.any(-1), at, np.nan)
    with np.errstate(all="ignore"):
        return np.array([np.median(row[np.isfinite(row)]) if np.isfinite(row).any() else np.nan for row in at])


def flips_at_matched_kl(real, gaussian, threshold, cell, seed) -> dict:
    """Flips at each curve's first crossing, real vs Gaussian bases along the same directions."""
    a, b = flips_at_first_crossing(real, threshold), flips_at_first_crossing(gaussian, threshold)
    out = {"median_flips": {"real": float(np.nanmedian(a)) if np.isfinite(a).any() else None,
                            "gaussian": float(np.nanmedian(b)) if np.isfinite(b).any() else None}}
    try:
        out["ratio_real_over_gaussian"] = stats.paired_log_ratio(
            1 + a, 1 + b, alternative="two-sided", documents=cell.documents, n_resamples=cell.config.n_resamples,
            random_state=seed).to_dict()
    except McisError as exc:
        out["ratio_real_over_gaussian"] = f"not estimated: {exc}"
    return out


def alignment(sweep, cell, seed) -> dict:
    """Step Spearman of KL vs flips per base against circular shifts of the flip increments."""
    S = len(cell.radii_rel)  # the schedule's radii, not the extension
    kl = sweep.per_base_curve()[:, :S]  # (n, S)
    flips = np.median(sweep.result.mlp_flips.sum(-1).double().numpy()[:, :, :S], axis=1)  # (n, S)
    observed = step_spearman(kl, flips)  # (n,)
    steps = np.diff(flips, axis=-1)
    shifted = np.stack([step_spearman(kl, np.concatenate(
        [np.zeros((len(flips), 1)), np.cumsum(np.roll(steps, s, axis=-1), axis=-1)], axis=-1))
        for s in range(1, S - 1)], axis=-1)  # (n, S - 2)
    with np.errstate(all="ignore"):
        null_mean = np.nanmean(shifted, axis=-1)
        p_base = (1 + np.sum(shifted >= observed[:, None], axis=-1)) / (1 + np.sum(np.isfinite(shifted), axis=-1))
    keep = np.isfinite(observed) & np.isfinite(null_mean)
    out = {"median_observed_step_spearman": float(np.median(observed[keep])) if keep.any() else None,
           "median_shifted_step_spearman": float(np.median(null_mean[keep])) if keep.any() else None,
           "median_per_base_shift_p": float(np.median(p_base[keep])) if keep.any() else None,
           "n_shifts": S - 2, "n_bases_with_steps": int(keep.sum())}
    try:
        out["observed_minus_shift_mean"] = stats.paired_difference(
            observed[keep], null_mean[keep], alternative="greater", documents=cell.documents[keep],
            n_resamples=cell.config.n_resamples, random_state=seed).to_dict()
    except McisError as exc:
        out["observed_minus_shift_mean"] = f"not estimated: {exc}"
    return out
