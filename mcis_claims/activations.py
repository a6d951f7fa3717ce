"""Real activations at a site and the statistics fitted to them.

The off-distribution baseline of the published work is N(mu, Sigma), the Gaussian
fitted to real last-position activations at the site (>= 1000 prompts), with Sigma
made positive definite. Radii are expressed in units of the median activation norm
at the site, so layers and models compare.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import InputError
from .sites import site_name
from .engine import last_position_resid

MIN_FIT_PROMPTS = 1000
EIGEN_FLOOR = 1e-6  # relative to the largest eigenvalue


@dataclass(frozen=True)
class SiteStats:
    """Gaussian fit and scale of real activations at one site (float64)."""

    layer: int
    site: str
    activations: torch.Tensor  # (n_fit, d) real last-position activations of the fit prompts
    mean: torch.Tensor  # (d,)
    cov: torch.Tensor  # (d, d), positive definite
    cov_factor: torch.Tensor  # (d, d) lower Cholesky factor of cov
    median_norm: float
    eigen_clipped: int  # how many eigenvalues were raised to the floor

    @property
    def n_fit(self) -> int:
        return self.activations.shape[0]

    def sample_gaussian(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Draws from N(mu, Sigma), shape (*shape, d)."""
        z = torch.randn(*shape, self.mean.shape[0], generator=generator, dtype=torch.float64)
        return self.mean + z @ self.cov_factor.T

    def to_meta(self) -> dict:
        eig = torch.linalg.eigvalsh(self.cov)
        return {
            "site": self.site,
            "n_fit": self.n_fit,
            "median_norm": self.median_norm,
            "cov_eig_min": float(eig.min()),
            "cov_eig_max": float(eig.max()),
            "eigen_clipped": self.eigen_clipped,
        }


def fit_site(model, layer: int, tokens: torch.Tensor, *, min_prompts: int = MIN_FIT_PROMPTS) -> SiteStats:
    """Fit N(mu, Sigma) and the median norm to the last-position activations of `tokens`."""
    return fit_sites(model, [layer], tokens, min_prompts=min_prompts)[layer]


def fit_sites(model, layers, tokens: torch.Tensor, *, min_prompts: int = MIN_FIT_PROMPTS) -> dict[int, SiteStats]:
    """`fit_site` at several layers from one partial forward (to the deepest): {layer: SiteStats}."""
    if tokens.shape[0] < min_prompts:
        raise InputError(
            f"the Gaussian fit needs >= {min_prompts} prompts for a {model.d_model}-dim covariance; got {tokens.shape[0]}"
        )
    return {layer: _fit(model, layer, acts.double()) for layer, acts in last_position_resid(model, layers, tokens).items()}


def _fit(model, layer: int, acts: torch.Tensor) -> SiteStats:
    if not torch.isfinite(acts).all():
        raise InputError(f"{model.name} produced NaN/inf activations at {site_name(layer)}")
    mean = acts.mean(0)
    cov, clipped = nearest_positive_definite(torch.cov(acts.T))
    return SiteStats(
        layer=layer,
        site=site_name(layer),
        activations=acts,
        mean=mean,
        cov=cov,
        cov_factor=torch.linalg.cholesky(cov),
        median_norm=float(acts.norm(dim=-1).median()),
        eigen_clipped=clipped,
    )


def nearest_positive_definite(cov: torch.Tensor, floor: float = EIGEN_FLOOR) -> tuple[torch.Tensor, int]:
    """Symmetrise and raise eigenvalues below floor * max eigenvalue (Higham's eigenvalue clipping)."""
    cov = (cov + cov.T) / 2
    eigval, eigvec = torch.linalg.eigh(cov)
    limit = floor * eigval.max().clamp_min(torch.finfo(cov.dtype).tiny)
    clipped = int((eigval < limit).sum())
    fixed = (eigvec * eigval.clamp_min(limit)) @ eigvec.T
    return (fixed + fixed.T) / 2, clipped
