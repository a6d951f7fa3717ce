"""Curve summaries: turn a sweep's read-outs into one number per base prompt.

radius_at_threshold   first radius where a curve exceeds a threshold (linear
                      interpolation between grid points); right-censored at the
                      largest radius when the curve never gets there.
median_crossing       the median over directions of censored radii, as a lower bound
                      and whether it is censored.
sharpness             max_t d'(t) / d(1) on an interpolation path (Janiak et al. 2024):
                      1 for a straight line, up to steps-1 for a pure step.
max_slope_step        index of the steepest step (Giglemiani et al. 2024).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError


@dataclass(frozen=True)
class Crossing:
    """Radius at which each curve first reaches the threshold; censored where it never does."""

    radius: np.ndarray  # (...,) the crossing radius, or the largest radius where censored
    censored: np.ndarray  # (...,) bool

    @property
    def censored_fraction(self) -> float:
        return float(self.censored.mean()) if self.censored.size else float("nan")


def radius_at_threshold(curves, radii, threshold: float) -> Crossing:
    """curves (..., S) non-decreasing-ish read-outs on the grid `radii` (S,), radii[0] usually 0."""
    values = _numpy(curves)
    grid = _numpy(radii).astype(np.float64)
    if values.shape[-1] != grid.shape[0]:
        raise InputError(f"curves have {values.shape[-1]} radii, grid has {grid.shape[0]}")
    if np.any(np.diff(grid) <= 0):
        raise InputError("radii must be strictly increasing")
    if not np.isfinite(values).all():
        raise InputError("curves contain NaN or inf")
    above = values >= threshold
    censored = ~above.any(-1)
    first = np.where(censored, grid.shape[0] - 1, above.argmax(-1))
    hi = np.take_along_axis(values, first[..., None], -1)[..., 0]
    lo_index = np.maximum(first - 1, 0)
    lo = np.take_along_axis(values, lo_index[..., None], -1)[..., 0]
    r_hi, r_lo = grid[first], grid[lo_index]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(hi > lo, (threshold - lo) / (hi - lo), 1.0)
    radius = np.where(first == 0, grid[0], r_lo + np.clip(frac, 0.0, 1.0) * (r_hi - r_lo))
    radius = np.where(censored, grid[-1], radius)
    return Crossing(radius=radius, censored=censored)


def median_crossing(crossing: Crossing) -> tuple[np.ndarray, np.ndarray]:
    """Median over the K directions (axis 1) of right-censored crossing radii -> (lower bound, censored).

    A censored radius is at least the schedule's last radius, and above every observed one,
    so the median with censored values at that radius is a lower bound, exact unless the
    median position falls on a censored value (then its upper bound is +inf).
    """
    lower = np.median(crossing.radius, axis=1)
    upper = np.median(np.where(crossing.censored, np.inf, crossing.radius), axis=1)
    return lower, ~np.isfinite(upper)


def sharpness(curves) -> np.ndarray:
    """max finite-difference slope of d(t)/d(1) times (steps - 1); curves (..., S) with d(0) = 0."""
    values = _numpy(curves).astype(np.float64)
    end = values[..., -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = values / end
    return np.diff(normalised, axis=-1).max(-1) * (values.shape[-1] - 1)


def max_slope_step(curves) -> np.ndarray:
    return np.diff(_numpy(curves), axis=-1).argmax(-1) + 1


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------- fixed-radius choices and step statistics
# (used by claims C5-C8: a fixed radius per cell, and how two read-outs move together along a sweep)


def plateau_end_index(curves, threshold: float) -> np.ndarray | int:
    """Index of the last grid point before each curve first reaches `threshold`.

    curves (..., S) on a radius grid; returns (...,) ints (an int for one curve): S - 1
    where a curve never reaches the threshold, -1 where its first point already does.
    Applied to a median curve over base prompts, radii[index] is the largest grid radius
    still inside that median plateau.

    >>> int(plateau_end_index([0.0, 0.01, 0.05, 0.2, 1.0], 0.1))
    2
    """
    values = _numpy(curves)
    if values.ndim == 0 or values.shape[-1] == 0:
        raise InputError(f"curves must be (..., S) with S >= 1; got shape {values.shape}")
    if np.isnan(values).any():
        raise InputError("curves contain NaN")
    above = values >= threshold
    index = np.where(above.any(-1), above.argmax(-1) - 1, values.shape[-1] - 1)
    return int(index) if index.ndim == 0 else index


def nearest_grid_index(radii, target: float) -> int:
    """Index of the grid radius nearest `target` (the smaller one on a tie).

    >>> nearest_grid_index([0.0, 0.1, 0.2, 0.4], 0.25)
    2
    """
    grid = _numpy(radii)
    if grid.ndim != 1 or grid.size == 0:
        raise InputError(f"radii must be a non-empty 1-D grid; got shape {grid.shape}")
    if not np.isfinite(target):
        raise InputError(f"target radius {target!r} must be finite")
    return int(np.argmin(np.abs(grid - target)))


def step_spearman(a, b) -> np.ndarray:
    """Spearman correlation between the per-step increases of two read-outs along a sweep.

    a, b (..., S) on the same grid (e.g. KL and MLP sign flips per radius); correlates
    diff(a) with diff(b) over the S - 1 steps, curve by curve (average ranks for ties, as
    scipy.stats.spearmanr). NaN where either has constant steps (no ranking to correlate).
    Returns (...,).

    >>> float(step_spearman([0, 1, 3, 6], [0, 2, 3, 9]))
    0.5
    """
    from scipy.stats import rankdata

    x, y = np.diff(_numpy(a), axis=-1), np.diff(_numpy(b), axis=-1)
    if x.shape != y.shape:
        raise InputError(f"a and b must have the same shape (..., S); got {_numpy(a).shape} and {_numpy(b).shape}")
    if x.shape[-1] < 2:
        raise InputError("need at least 3 grid points (2 steps) to correlate steps")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("a or b contains NaN or inf")
    rx = rankdata(x, axis=-1) - (x.shape[-1] + 1) / 2  # centred ranks
    ry = rankdata(y, axis=-1) - (y.shape[-1] + 1) / 2
    scale = np.sqrt((rx**2).sum(-1) * (ry**2).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, (rx * ry).sum(-1) / scale, np.nan)


# ---------------------------------------------------------------- secondary read-outs of plateau claims


SECONDARY_THRESHOLDS = (0.01, 0.1, 1.0)  # nats: is the verdict the same at each? (claims.md, secondary read-outs)


def loglog_slope_at_crossing(curves, radii, threshold: float) -> np.ndarray:
    """Local slope of log KL against log r on the grid step where each curve first reaches `threshold`.

    2 for a smooth quadratic onset (KL ~ r^2); larger where a plateau ends in a jump.
    NaN where a curve never crosses, crosses at the first radius, or is 0 just before.
    curves (..., S) on radii (S,); returns (...,).
    """
    values, grid = _numpy(curves), _numpy(radii)
    above = values >= threshold
    crossed = above.any(-1)
    first = np.where(crossed, above.argmax(-1), 0)
    before = np.maximum(first - 1, 0)
    hi = np.take_along_axis(values, first[..., None], -1)[..., 0]
    lo = np.take_along_axis(values, before[..., None], -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (np.log(hi) - np.log(lo)) / (np.log(grid[first]) - np.log(grid[before]))
    valid = crossed & (first > 0) & (lo > 0) & (grid[before] > 0)
    return np.where(valid, slope, np.nan)
