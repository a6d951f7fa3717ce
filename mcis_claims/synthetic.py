"""What claim C10 builds from an SAE and the site's real activations.

C10a (Giglemiani et al. 2024): synthetic activations that stand in for real bases, from
latent densities measured on the site's real pool: single latents, composites of
density-matched latents (optionally cosine-controlled), other prompts' reconstructions,
each base's own reconstruction; `synthetic_bases` makes the five C10a compares.
C10b (Lee & Heimersheim 2024): unit decoder directions of latents (`sae_decoder`), and the
SAEs ordered by the L0 they have on the pool (`by_l0`), with the descriptive trend over L0.

Pure functions of tensors: the cell (`cell.py`) supplies the bases, the pool and the seeded
generators, and sweeps what is built here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .directions import DirectionKind
from .errors import InputError
from .sae import SAE, weights_sha256

DENSITY_TOLERANCE = 0.1  # |delta log10 density| of a composite's replacement latent (Giglemiani et al.)


# ---------------------------------------------------------------- latents on the real pool


@torch.no_grad()
def latent_density(sae: SAE, activations: torch.Tensor) -> torch.Tensor:
    """(d_sae,) fraction of `activations` (n, d) on which each latent is active."""
    active = torch.cat([(sae.encode(chunk.float()) > 0) for chunk in activations.split(4096)])
    return active.double().mean(0)


def log_density(density: torch.Tensor, n: int) -> torch.Tensor:
    """log10 density, floored at half a count (1 / 2n) so never-seen latents compare finitely."""
    return torch.log10(density.clamp_min(0.5 / n))


@torch.no_grad()
def mean_l0(sae: SAE, activations: torch.Tensor) -> float:
    """Mean number of active latents per row of `activations` (n, d): the SAE's L0 there."""
    return float((sae.encode(activations.float()) > 0).sum(-1).float().mean())


@torch.no_grad()
def fve(sae: SAE, activations: torch.Tensor) -> float:
    """Fraction of the variance of `activations` (n, d) that the SAE's reconstruction explains."""
    recon = sae(activations.float())
    return float(1 - (activations - recon.double()).pow(2).sum() / (activations - activations.mean(0)).pow(2).sum())


# ---------------------------------------------------------------- synthetic activations (C10a)


@torch.no_grad()
def synthetic_single(sae: SAE, n: int, density: torch.Tensor, target_norm: float, generator: torch.Generator):
    """(n, d) activations decode(a e_i): one latent i, drawn by density among alive latents, with
    a > 0 chosen so that ||b_dec + a W_dec[i]|| equals `target_norm` (the site's median norm)."""
    alive = density > 0
    if not alive.any():
        raise InputError("synthetic_single: no latent is ever active on the real pool")
    latent = torch.multinomial(density.float(), n, replacement=True, generator=generator)
    d, b = sae.W_dec[latent].double(), sae.b_dec.double()
    # ||b + a d||^2 = m^2  ->  a = (-b.d + sqrt((b.d)^2 - |d|^2 (|b|^2 - m^2))) / |d|^2
    bd, dd, bb = d @ b, (d * d).sum(-1), b @ b
    disc = (bd**2 - dd * (bb - target_norm**2)).clamp_min(0)
    a = ((-bd + disc.sqrt()) / dd).clamp_min(0)
    return (b + a[:, None] * d).float(), latent


@torch.no_grad()
def match_norm(synthetic: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """(n, d) each synthetic row scaled to the norm of the real base it replaces (bases: (n, d)),
    so that a synthetic base differs from its real one in direction only (C10a)."""
    if synthetic.shape != bases.shape:
        raise InputError(f"match_norm: synthetic {tuple(synthetic.shape)} and bases {tuple(bases.shape)} differ")
    scale = bases.double().norm(dim=-1, keepdim=True) / synthetic.double().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (synthetic.double() * scale).to(synthetic.dtype)


@torch.no_grad()
def synthetic_recon_other(sae: SAE, pool: torch.Tensor, n: int, generator: torch.Generator):
    """(n, d) SAE reconstructions of other prompts' real activations (from `pool`)."""
    index = torch.randint(pool.shape[0], (n,), generator=generator)
    return sae(pool[index].float()), index


@dataclass(frozen=True)
class Composite:
    activations: torch.Tensor  # (n, d)
    original: list  # per base: the base's active latents, by decreasing activation
    replaced: list  # per base: the latents that replace them, same order and values
    fallbacks: int  # replacements with no candidate within tolerance: the nearest density was used


@torch.no_grad()
def synthetic_composite(sae: SAE, bases: torch.Tensor, density: torch.Tensor, n_pool: int, generator: torch.Generator,
                        *, tolerance: float = DENSITY_TOLERANCE, match_cosine: bool = False) -> Composite:
    """Each base's active latents swapped for other latents of similar density, same values, decoded.

    Density is matched on the log10 scale, |log10 p_new - log10 p_old| < tolerance (p measured on
    `n_pool` real activations; Bloom's SAEs store sparsity as log10 density, which is what
    Giglemiani et al.'s |Delta sparsity| < 0.1 refers to). This controls sparsity: the same L0,
    values and per-latent densities. With match_cosine (Giglemiani et al.'s structured synthetic
    activations), the cosine similarities between the new latents' decoder directions also
    follow the originals': latents are placed in decreasing order of activation, the first at
    random among the density-matched candidates, each next one the candidate minimising
    sum_s (cos(new, new_s) - cos(old, old_s))^2 over those already placed.
    """
    z = sae.encode(bases.float())
    logp = log_density(density, n_pool)
    alive = density > 0
    directions = sae.unit_decoder()
    out, originals, replacements, fallbacks = [], [], [], 0
    for row in z:
        active = torch.nonzero(row > 0).flatten()
        active = active[row[active].argsort(descending=True)]
        taken = torch.zeros_like(alive)
        taken[active] = True  # never reuse the base's own latents
        new = []
        for t, old in enumerate(active.tolist()):
            free = alive & ~taken
            candidates = torch.nonzero(free & ((logp - logp[old]).abs() < tolerance)).flatten()
            if len(candidates) == 0:
                fallbacks += 1
                pool = torch.nonzero(free).flatten()
                candidates = pool[(logp[pool] - logp[old]).abs().argmin()].reshape(1)
            if match_cosine and t > 0:
                target = directions[active[:t]] @ directions[old]  # (t,) cosines among the originals
                got = directions[candidates] @ directions[torch.tensor(new)].T  # (C, t)
                choice = candidates[(got - target).pow(2).sum(-1).argmin()]
            else:
                choice = candidates[torch.randint(len(candidates), (1,), generator=generator)][0]
            new.append(int(choice))
            taken[choice] = True
        swapped = torch.zeros_like(row)
        if new:
            swapped[torch.tensor(new)] = row[active]
        out.append(sae.decode(swapped))
        originals.append(active.tolist())
        replacements.append(new)
    return Composite(torch.stack(out), originals, replacements, fallbacks)


@dataclass(frozen=True)
class SyntheticBases:
    """C10a's synthetic stand-ins for m real bases, by name, before and after norm matching.

    recon_self (each base's own reconstruction) and composite share the SAE, its reconstruction
    error, L0 and latent values and differ only in which latents are combined, so their radius
    ratio is the composition effect; the other kinds are reported beside it. `matched` scales
    each row to the norm of the real base it replaces, so a stand-in differs from it in direction only.
    """

    sae: SAE
    bases: torch.Tensor  # (m, d) the real bases
    raw: dict  # name -> (m, d): recon_self, composite, composite_cosine_controlled, single_latent, recon_other
    matched: dict  # name -> (m, d) the same rows, each at the norm of its real base
    fallbacks: dict  # composite name -> replacements with no candidate within tolerance (nearest density used)
    n_pool: int  # real activations the latent densities were measured on
    l0_on_pool: float
    fve_on_pool: float

    def provenance(self, origin: str) -> dict:
        """The SAE behind the stand-ins, for the record: label, origin, hook, weights, L0 and FVE on the pool."""
        return {"sae": self.sae.label, "sae_source": origin, "sae_hook_name": self.sae.hook_name,
                "sae_weights_sha256": weights_sha256(self.sae), "sae_l0_on_pool": self.l0_on_pool,
                "sae_fve_on_pool": self.fve_on_pool}

    def norm_matching(self) -> str:
        """What the scaling changed: each kind's median ||synthetic|| / ||base|| before it."""
        base_norm = self.bases.double().norm(dim=-1)
        return ("each synthetic base scaled to its real base's norm; before scaling, median "
                "||synthetic|| / ||base||: " + ", ".join(
                    f"{name} {float((b.double().norm(dim=-1) / base_norm).median()):.3g}"
                    for name, b in self.raw.items()))

    def recon_self_cosine(self) -> float:
        """Median cosine between a base and its own (norm-matched) reconstruction."""
        base_norm = self.bases.double().norm(dim=-1)
        return float((self.matched["recon_self"].double() @ self.bases.double().T).diagonal()
                     .div(base_norm ** 2).median())

    def density_match(self) -> str:
        """How the composites matched densities, and how often no latent was close enough."""
        return (f"|log10 density - log10 density_orig| < {DENSITY_TOLERANCE:g} on the site's real pool "
                f"({self.n_pool} last-position activations); fallbacks to the nearest density: "
                f"composite {self.fallbacks['composite']}, "
                f"cosine-controlled {self.fallbacks['composite_cosine_controlled']}")


def synthetic_bases(sae: SAE, bases: torch.Tensor, pool: torch.Tensor, median_norm: float,
                    generator: Callable[[str], torch.Generator]) -> SyntheticBases:
    """C10a's five stand-ins for `bases` (m, d), with latent densities measured on `pool` (n, d).

    generator(name) gives each random kind its own stream ("composite", "structured", "single",
    "recon_other"), so no kind's draws depend on another's or on the order they are made in.
    """
    if bases.dim() != 2 or pool.dim() != 2 or not bases.shape[1] == pool.shape[1] == sae.d_in:
        raise InputError(f"synthetic_bases: bases {tuple(bases.shape)} and pool {tuple(pool.shape)} must be "
                         f"(m, d) and (n, d) with d = the SAE's d_in = {sae.d_in}")
    m = bases.shape[0]
    density = latent_density(sae, pool)
    composite = synthetic_composite(sae, bases, density, len(pool), generator("composite"))
    structured = synthetic_composite(sae, bases, density, len(pool), generator("structured"), match_cosine=True)
    single, _ = synthetic_single(sae, m, density, median_norm, generator("single"))
    recon, _ = synthetic_recon_other(sae, pool, m, generator("recon_other"))
    raw = {"recon_self": sae(bases.float()), "composite": composite.activations,
           "composite_cosine_controlled": structured.activations, "single_latent": single, "recon_other": recon}
    return SyntheticBases(
        sae=sae, bases=bases, raw=raw, matched={name: match_norm(b.float(), bases.float()) for name, b in raw.items()},
        fallbacks={"composite": composite.fallbacks, "composite_cosine_controlled": structured.fallbacks},
        n_pool=len(pool), l0_on_pool=mean_l0(sae, pool), fve_on_pool=fve(sae, pool))


# ---------------------------------------------------------------- decoder directions and L0 (C10b)


class _SAEDecoder(DirectionKind):
    """Unit decoder rows of latents that are active on the base, alive but inactive, or dead.

    Alive / dead is judged on the site's real pool (SiteStats.activations): dead = never active there.
    """

    WHICH = ("active", "inactive", "dead")

    def __init__(self, sae: SAE, which: str = "active"):
        if which not in self.WHICH:
            raise InputError(f"sae_decoder which={which!r}; choose one of {', '.join(self.WHICH)}")
        self.sae, self.which = sae, which
        self.name = f"sae_decoder_{which}"

    def sample(self, stats, n, k, generator, bases=None):
        if bases is None and self.which != "dead":
            raise InputError(f"{self!r} needs the base activations (latents active on each base)")
        density = latent_density(self.sae, stats.activations)
        directions = self.sae.unit_decoder()
        out = torch.empty(n, k, directions.shape[1], dtype=torch.float64)
        active = (self.sae.encode(bases.float()) > 0) if bases is not None else None
        for i in range(n):
            if self.which == "active":
                pool = torch.nonzero(active[i]).flatten()
            elif self.which == "inactive":
                pool = torch.nonzero(~active[i] & (density > 0)).flatten()
            else:
                pool = torch.nonzero(density == 0).flatten()
            if len(pool) == 0:
                raise InputError(f"{self!r}: no such latent for base {i} (the SAE has none {self.which} there)")
            pick = pool[torch.randint(len(pool), (k,), generator=generator)]
            out[i] = directions[pick]
        return out

    def __repr__(self) -> str:
        return f"sae_decoder({self.sae.label!r}, which={self.which!r})"


def sae_decoder(sae: SAE, which: str = "active") -> DirectionKind:
    return _SAEDecoder(sae, which)


@dataclass(frozen=True)
class SAEsByL0:
    """C10b's SAEs in ascending L0 measured on the site's real pool, each under a tag `l0_<L0>`."""

    saes: dict  # tag -> SAE, L0 ascending
    l0: dict  # tag -> mean active latents per pool activation

    @property
    def lowest(self) -> str:
        return next(iter(self.l0))

    @property
    def highest(self) -> str:
        return list(self.l0)[-1]

    def provenance(self, origin: str) -> dict:
        """The SAEs for the record: labels, where they came from, weights' sha256, and L0 on the pool."""
        return {"saes": {t: s.label for t, s in self.saes.items()}, "sae_source": origin,
                "sae_weights_sha256": {t: weights_sha256(s) for t, s in self.saes.items()},
                "l0_on_pool": dict(self.l0)}

    def trend(self, ratios: dict) -> dict:
        """`l0_trend` of per-base ratios, {tag: (m,)}."""
        return l0_trend(list(self.l0.values()), [ratios[t] for t in self.l0])


def by_l0(saes: Sequence[SAE], activations: torch.Tensor) -> SAEsByL0:
    """`saes` ordered by their L0 on `activations` (n, d); tags `l0_<L0>`, `_<i>` added where two round alike.

    InputError unless the lowest and the highest L0 differ: C10b compares them.
    """
    l0 = [mean_l0(s, activations) for s in saes]
    order = np.argsort(l0, kind="stable")
    saes, l0 = [saes[i] for i in order], [l0[i] for i in order]
    if len(l0) < 2 or l0[0] == l0[-1]:
        raise InputError(f"C10b needs SAEs of different L0; got L0 {l0} on the site's pool")
    tags = [f"l0_{v:.0f}" for v in l0]
    if len(set(tags)) < len(tags):  # two --sae of about the same L0: keep both apart
        tags = [f"{t}_{i}" for i, t in enumerate(tags)]
    return SAEsByL0(dict(zip(tags, saes)), dict(zip(tags, l0)))


def l0_trend(l0, ratios) -> dict:
    """Descriptive trend of r_dec / r_cov over L0: l0 (L,), ratios (L, m) per base, L0 ascending."""
    l0, ratios = np.asarray(l0, dtype=float), np.asarray(ratios, dtype=float)
    medians = np.nanmedian(ratios, axis=1)

    def ranks(x):  # average ranks, ties shared
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(1, len(x) + 1)
        for value in np.unique(x):
            r[x == value] = r[x == value].mean()
        return r

    rl, rm = ranks(l0), ranks(medians)
    rho = float(np.corrcoef(rl, rm)[0, 1]) if rm.std() > 0 and rl.std() > 0 else float("nan")
    steps = np.diff(medians)
    shape = ("increasing" if (steps > 0).all() else "decreasing" if (steps < 0).all() else "not monotone")
    rises = np.all(np.diff(ratios, axis=0) > 0, axis=0)
    return {"l0": l0.tolist(), "median_decoder_over_cov_random": medians.tolist(),
            "spearman_l0_vs_median": rho, "medians_with_l0": shape,
            "fraction_of_bases_rising_with_l0": float(rises.mean()),
            "note": "descriptive only: C10b predicts r_dec / r_cov rising with L0 (rho > 0); censored radii "
                    "enter at their lower bound"}
