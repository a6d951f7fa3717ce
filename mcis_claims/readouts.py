"""Curve summaries: turn a sweep's read-outs into one number per base prompt.

radius_at_threshold   first radius where a curve exceeds a threshold (linear
                      interpolation between grid points); right-censored at the
                      largest radius when the curve never gets there.
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
