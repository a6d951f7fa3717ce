"""Perturbation directions, defined once and named in every report.

Corrected baselines (Lee & Heimersheim 2024): no direction kind is built from the
base activation itself, because unit(target - x) shrinks x towards the target and
biased the first published baselines. The historical form is kept, labelled
`toward_real` / `toward_gaussian`, only to reproduce the seed's observation (C4).

Kinds behave like Hypothesis strategies: built with arguments checked, composed by
the claims, and their repr rebuilds the call, e.g. `real_mixture()`.
Every `sample` returns unit vectors of shape (n, k, d) in float64.
"""
from __future__ import annotations

import torch

from .activations import SiteStats
from .errors import InputError


class DirectionKind:
    name: str = "?"

    def sample(self, stats: SiteStats, n: int, k: int, generator: torch.Generator,
               bases: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}()"


class _Isotropic(DirectionKind):
    """Uniform on the unit sphere."""

    name = "isotropic"

    def sample(self, stats, n, k, generator, bases=None):
        return unit(torch.randn(n, k, stats.mean.shape[0], generator=generator, dtype=torch.float64))


class _CovRandomMixture(DirectionKind):
    """unit(g1 - g2), g1, g2 ~ N(mu, Sigma) independent: covariance-matched, base-free."""

    name = "cov_random_mixture"

    def sample(self, stats, n, k, generator, bases=None):
        return unit(stats.sample_gaussian((n, k), generator) - stats.sample_gaussian((n, k), generator))


class _RealMixture(DirectionKind):
    """unit(a1 - a2), a1 != a2 real activations of two other prompts (the fit pool, disjoint from bases)."""

    name = "real_mixture"

    def sample(self, stats, n, k, generator, bases=None):
        pool = stats.activations
        first, second = distinct_pairs(pool.shape[0], (n, k), generator)
        return unit(pool[first] - pool[second])


_REDRAWS = 100


class _Toward(DirectionKind):
    """Historical (biased) form: unit(target - x), target real or Gaussian. Only for C4's reproduction."""

    def __init__(self, target: str):
        if target not in ("real", "gaussian"):
            raise InputError(f"toward target must be 'real' or 'gaussian'; got {target!r}")
        self.target = target
        self.name = f"toward_{target}"

    def sample(self, stats, n, k, generator, bases=None):
        if bases is None:
            raise InputError(f"{self.name} needs the base activations (it subtracts them)")
        bases = bases.double()[:, None]
        if self.target == "gaussian":
            return unit(stats.sample_gaussian((n, k), generator) - bases)
        targets = real_targets(stats, (n, k), generator)
        for _ in range(_REDRAWS):  # a target equal to its base (a repeated text window) has no direction: redraw it
            same = (targets == bases).all(dim=-1)
            if not same.any():
                break
            targets[same] = real_targets(stats, (int(same.sum()),), generator)
        return unit(targets - bases)

    def __repr__(self) -> str:
        return f"toward({self.target!r})"


def isotropic() -> DirectionKind:
    return _Isotropic()


def cov_random_mixture() -> DirectionKind:
    return _CovRandomMixture()


def real_mixture() -> DirectionKind:
    return _RealMixture()


def toward(target: str) -> DirectionKind:
    return _Toward(target)


KINDS = {"isotropic": isotropic, "cov_random_mixture": cov_random_mixture, "real_mixture": real_mixture}


def real_targets(stats: SiteStats, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Real activations of other prompts (from the fit pool), e.g. the end points of real_other paths."""
    index = torch.randint(stats.n_fit, shape, generator=generator)
    return stats.activations[index]


def real_other_path(base: torch.Tensor, target: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points x + t (b - x) on the straight path from base to target: (n, d), (n, d), (S,) -> (n, S, d)."""
    return base[:, None] + t[None, :, None].to(base) * (target - base)[:, None]


def distinct_pairs(size: int, shape: tuple[int, ...], generator: torch.Generator):
    """Index pairs (i, j), i != j, uniform over ordered pairs of a pool of `size`."""
    if size < 2:
        raise InputError(f"need at least 2 activations to form a pair; got {size}")
    first = torch.randint(size, shape, generator=generator)
    offset = torch.randint(1, size, shape, generator=generator)
    return first, (first + offset) % size


def unit(v: torch.Tensor) -> torch.Tensor:
    norm = v.norm(dim=-1, keepdim=True)
    if (norm == 0).any():
        raise InputError("cannot normalise a zero vector to a direction")
    return v / norm
