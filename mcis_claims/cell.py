"""One (model, layer) cell of a claim grid, and the run-wide workspace behind it.

A claim function receives a `ClaimCell`: the model, the site, the base prompts, the
site's Gaussian fit, the radius schedule and seeded generators, plus the shared
sweeps (e.g. real bases under covariance-matched directions) that several claims
use. The workspace loads each model once, samples each model's prompts once and
caches sweeps, so a grid of claims costs little more than its distinct sweeps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from . import directions as dirs
from .activations import SiteStats, fit_site
from .config import RunConfig
from .models import LoadedModel, load_model
from .parity import ParityCheck, check_site
from .progress import progress_bar, stage
from .prompts import Corpus, PromptSet, load_corpus, sample_prompts
from .readouts import Crossing, median_crossing, plateau_end_index, radius_at_threshold
from .sites import site_name
from .engine import ROW_READOUTS, SweepResult, reshape_result, sweep, sweep_points

# A curve still below the KL threshold at the schedule's end is swept further, up to this many
# median norms, before it is called censored (far past it a perturbation is a different activation).
MAX_RADIUS = 16.0


@dataclass
class KindSweep:
    """KL curves of one perturbation kind over the base prompts: kl is (n, K, S)."""

    kind: str
    kl: torch.Tensor
    radii_rel: np.ndarray  # (S,) in units of the median norm
    result: SweepResult  # all read-outs, shaped (n, K, S, ...): resid_l2, final_l2, mlp_flips, top1_changed
    seconds: float

    def crossing(self, threshold: float, first: int | None = None) -> Crossing:
        return radius_at_threshold(self.kl[:first], self.radii_rel, threshold)

    def per_base_radius(self, threshold: float, first: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per base: the median crossing radius over its K directions, and whether that median is censored.

        Of the first `first` bases only, when a claim pairs this sweep with one on a subset.
        -> (radius, censored): radius (n,) is exact where censored is False; where True, the
        median lands on curves that never crossed, so the radius is only a lower bound (pass
        it to `stats.paired_log_ratio(..., censored_a=censored)`).
        """
        return median_crossing(self.crossing(threshold, first))

    def per_base_curve(self, first: int | None = None) -> np.ndarray:
        """(n, S) median KL over the K directions of each base, for figures."""
        return self.kl[:first].median(dim=1).values.numpy()


def extension_radii(largest: float) -> np.ndarray:
    """Radii past the schedule's end, a factor sqrt(2) apart, up to MAX_RADIUS x the median norm."""
    if largest >= MAX_RADIUS:
        return np.empty(0)
    steps = int(np.ceil(2 * np.log2(MAX_RADIUS / largest) - 1e-9))
    return np.minimum(largest * np.sqrt(2.0) ** np.arange(1, steps + 1), MAX_RADIUS)


def _concat_radii(a: SweepResult, b: SweepResult) -> SweepResult:
    """Read-outs (n, K, S, ...) of two radius schedules, joined along the radius axis."""
    def join(name):
        x, y = getattr(a, name), getattr(b, name)
        return None if x is None else torch.cat([x, y], dim=2)

    return replace(a, radii=None, **{name: join(name) for name in ROW_READOUTS})


def inside_plateaus(*sweeps: KindSweep, threshold: float) -> tuple[int, list[int], str | None]:
    """The largest grid index where the median KL over bases of every sweep is still below `threshold`.

    -> (index, each sweep's own plateau end, problem): a fixed radius chosen from KL alone, inside
    every median plateau (claims C5, C8). Index 1 with a problem line when one plateau ends at once.
    """
    ends = [int(plateau_end_index(np.median(s.per_base_curve(), axis=0), threshold)) for s in sweeps]
    index, problem = min(ends), None
    if index < 1:
        problem = (f"median KL reaches {threshold} nats at the first nonzero radius {sweeps[0].radii_rel[1]:g} x "
                   "median norm for one sweep: no radius inside every plateau. Try a smaller --kl-threshold")
        index = 1
    return index, ends, problem


@dataclass
class Workspace:
    """Run-wide caches: models, prompts, site fits, sweeps. One per pytest session."""

    config: RunConfig
    _models: dict = field(default_factory=dict)
    _corpus: Corpus | None = None
    _prompts: dict = field(default_factory=dict)
    _stats: dict = field(default_factory=dict)
    _sweeps: dict = field(default_factory=dict)
    _parity: dict = field(default_factory=dict)
    toys: dict = field(default_factory=dict)  # C11's toy models: name -> training report (toys.py)

    def model(self, name: str) -> LoadedModel:
        if name not in self._models:
            with stage(f"load {name}"):
                self._models[name] = load_model(name, device=self.config.device)
        return self._models[name]

    def corpus(self) -> Corpus:
        if self._corpus is None:
            self._corpus = load_corpus(self.config.corpus)
        return self._corpus

    def prompt_pool(self, name: str) -> PromptSet:
        """Bases first, then the fit pool: disjoint windows of real text, seeded."""
        if name not in self._prompts:
            model = self.model(name)
            cfg = self.config
            with stage(f"sample {cfg.n_prompts + cfg.n_fit} prompt windows from {cfg.corpus}"):
                self._prompts[name] = sample_prompts(
                    self.corpus(), model.tokenizer, cfg.n_prompts + cfg.n_fit, length=cfg.prompt_length,
                    seed=cfg.cell_seed("prompts"), prepend_bos=model.prepend_bos,
                    requested_as=f"--n-prompts {cfg.n_prompts} + --n-fit {cfg.n_fit}",
                    one_per_document=cfg.n_prompts,  # bases from distinct documents: independent units
                )
        return self._prompts[name]

    def bases(self, name: str) -> PromptSet:
        return self.prompt_pool(name).subset(np.arange(self.config.n_prompts))

    def site_stats(self, name: str, layer: int) -> SiteStats:
        key = (name, layer)
        if key not in self._stats:
            pool = self.prompt_pool(name)
            fit = pool.subset(np.arange(self.config.n_prompts, len(pool)))
            with stage(f"fit {name} {site_name(layer)} on {len(fit)} activations"):
                self._stats[key] = fit_site(self.model(name), layer, fit.tokens)
        return self._stats[key]

    def check_parity(self, name: str, layer: int) -> ParityCheck:
        """Once per site: the engine against one full bridge forward per row; raises ParityError on a mismatch."""
        key = (name, layer)
        if key not in self._parity:
            generator = torch.Generator().manual_seed(self.config.cell_seed(name, layer, "parity"))
            model, tokens = self.model(name), self.bases(name).tokens
            with stage(f"parity check {name} {site_name(layer)} (engine vs full forwards)"):
                self._parity[key] = check_site(model, layer, tokens, generator)
        self._parity[key].raise_if_failed()
        return self._parity[key]

    def cached(self, key: tuple, compute):
        if key not in self._sweeps:
            self._sweeps[key] = compute()
        return self._sweeps[key]

    def provenance(self) -> dict:
        """Which models, corpus, prompts and site fits this run used (for the report)."""
        return {
            "models": {**{name: m.to_meta() for name, m in self._models.items()}, **self.toys},
            "corpus": self._corpus.to_meta() if self._corpus else None,
            "prompts": {name: {**pool.to_meta(), "bases": self.config.n_prompts}
                        for name, pool in self._prompts.items()},
            "sites": {f"{name}|{layer}": stats.to_meta() for (name, layer), stats in self._stats.items()},
            "parity": {f"{name}|{layer}": check.to_meta() for (name, layer), check in self._parity.items()},
        }


@dataclass
class ClaimCell:
    """What a claim function works with: one model at one site."""

    workspace: Workspace
    model_name: str
    layer: int

    @property
    def config(self) -> RunConfig:
        return self.workspace.config

    @property
    def model(self) -> LoadedModel:
        return self.workspace.model(self.model_name)

    @property
    def site(self) -> str:
        return site_name(self.layer)

    @property
    def prompts(self) -> PromptSet:
        return self.workspace.bases(self.model_name)

    @property
    def fit_tokens(self) -> torch.Tensor:
        """(n_fit, T) tokens of the fit pool, in the order of `stats.activations`."""
        pool = self.workspace.prompt_pool(self.model_name)
        return pool.tokens[self.config.n_prompts:]

    @property
    def stats(self) -> SiteStats:
        return self.workspace.site_stats(self.model_name, self.layer)

    @property
    def radii_rel(self) -> np.ndarray:
        return np.asarray(self.config.radii, dtype=np.float64)

    @property
    def radii_abs(self) -> torch.Tensor:
        return torch.tensor(self.radii_rel * self.stats.median_norm, dtype=torch.float32)

    def generator(self, *tags: object) -> torch.Generator:
        """Seeded from the run seed, the model, the layer and the tags: order-independent."""
        return torch.Generator().manual_seed(self.config.cell_seed(self.model_name, self.layer, *tags))

    def base_activations(self) -> torch.Tensor:
        """(n, d) clean last-position activations of the base prompts at the site."""
        from .engine import resid_pre

        return self.workspace.cached(
            ("bases", self.model_name, self.layer),
            lambda: resid_pre(self.model, self.layer, self.prompts.tokens)[:, -1],
        )

    def gaussian_bases(self) -> torch.Tensor:
        """(n, d) draws from N(mu, Sigma), one per base prompt (the off-distribution bases of C1)."""
        return self.workspace.cached(
            ("gaussian_bases", self.model_name, self.layer),
            lambda: self.stats.sample_gaussian((len(self.prompts),), self.generator("gaussian_bases")).float(),
        )

    def other_real_bases(self) -> torch.Tensor:
        """(n, d) the real activation of another prompt (from the fit pool), one per base prompt: placed in
        this prompt's context it is on-distribution but not this context's (C1's secondary arm)."""
        def draw():
            pick = torch.randint(self.stats.n_fit, (len(self.prompts),), generator=self.generator("other_real_bases"))
            return self.stats.activations[pick].float()

        return self.workspace.cached(("other_real_bases", self.model_name, self.layer), draw)

    def directions(self, kind: dirs.DirectionKind) -> torch.Tensor:
        """(n, K, d) unit directions of `kind`, the same for every claim that asks."""
        return self.workspace.cached(
            ("directions", self.model_name, self.layer, repr(kind)),
            lambda: kind.sample(self.stats, len(self.prompts), self.config.n_directions,
                                self.generator("directions", repr(kind)), bases=self.base_activations()).float(),
        )

    def sweep_kind(self, kind: dirs.DirectionKind, *, base: str = "real", freeze_mlp: bool = False) -> KindSweep:
        """KL curves for real bases (or Gaussian ones, or another prompt's real activation: `other_real`)
        perturbed along `kind` over the radius schedule."""
        # freeze_mlp: every later MLP nonlinearity frozen at the base's own values (engine; claim C5)
        if base not in ("real", "gaussian", "other_real"):
            raise ValueError(f"base must be 'real', 'gaussian' or 'other_real'; got {base!r}")
        key = ("sweep", self.model_name, self.layer, repr(kind), base) + (("freeze_mlp",) if freeze_mlp else ())
        return self.workspace.cached(key, lambda: self._sweep_kind(kind, base, freeze_mlp))

    def _sweep_kind(self, kind, base, freeze_mlp=False) -> KindSweep:
        """The schedule's sweep; where a curve has not reached --kl-threshold by its end, the
        whole kind is swept on at `extension_radii` (so censoring is what is left at MAX_RADIUS)."""
        started = time.perf_counter()
        u = self.directions(kind)
        radii_rel = self.radii_rel
        result = self._sweep_radii(kind, base, u, radii_rel, freeze_mlp=freeze_mlp)
        if bool((result.kl.amax(dim=-1) < self.config.kl_threshold).any()):
            more = extension_radii(float(radii_rel[-1]))
            if more.size:
                result = _concat_radii(result, self._sweep_radii(kind, base, u, more, extension=True,
                                                                   freeze_mlp=freeze_mlp))
                radii_rel = np.concatenate([radii_rel, more])
        return KindSweep(kind=f"{kind.name}" + ("" if base == "real" else f"@{base}_base")
                         + ("+frozen_mlp" if freeze_mlp else ""), kl=result.kl,
                         radii_rel=radii_rel, result=result, seconds=time.perf_counter() - started)

    def _sweep_radii(self, kind, base, u, radii_rel, extension: bool = False, freeze_mlp: bool = False) -> SweepResult:
        radii = torch.tensor(radii_rel * self.stats.median_norm, dtype=torch.float32)
        label = (f"{self.model_name} {self.site} {kind!r} ({base} bases{', extended radii' if extension else ''}"
                 f"{', MLPs frozen' if freeze_mlp else ''})")
        n, K, S = u.shape[0], u.shape[1], len(radii)
        with self._progress(label, n * K * S) as advance:
            if base == "real":
                return sweep(self.model, self.layer, self.prompts.tokens, u, radii, track_mlp=True,
                             progress=advance, freeze_mlp=freeze_mlp)
            g = self.gaussian_bases() if base == "gaussian" else self.other_real_bases()
            points = (g[:, None, None, :] + radii[None, None, :, None] * u[:, :, None, :]).flatten(1, 2)
            result = sweep_points(self.model, self.layer, self.prompts.tokens, points, reference=g,
                                  track_mlp=True, progress=advance, freeze_mlp=freeze_mlp)
            return reshape_result(result, (K, S))

    @property
    def documents(self) -> np.ndarray:
        """(n,) the corpus document of each base prompt (bases share one only when n exceeds the documents)."""
        return self.prompts.document

    def paired_ratio(self, spec, a, b, *, censored_a=None, censored_b=None):
        """`spec`'s estimate of the median a / b over this cell's base prompts.

        Everything but the comparison comes from the spec and the cell: the alternative, the
        level, the SESOI, the units' documents, the resample count and a seed of this cell, so a
        claim body is the comparison itself (censored_*: arms whose value is only a lower bound)."""
        from . import stats

        return stats.paired_log_ratio(a, b, **self._estimate_args(spec), censored_a=censored_a, censored_b=censored_b)

    def paired_difference(self, spec, a, b, *, censored_a=None, censored_b=None):
        """As `paired_ratio`, for the median difference a - b."""
        from . import stats

        return stats.paired_difference(a, b, **self._estimate_args(spec), censored_a=censored_a, censored_b=censored_b)

    def _estimate_args(self, spec) -> dict:
        return dict(alternative=spec.alternative, confidence_level=spec.ci_level, sesoi=spec.sesoi,
                    documents=self.documents, n_resamples=self.config.n_resamples,
                    random_state=self.config.cell_seed(spec.id, self.model_name, self.layer))

    def _progress(self, label: str, total: int):
        return progress_bar(f"sweep {label}", total, "rows")


@dataclass
class LayerGrid:
    """All layers of the grid for one model: what a claim about depth (C4) works with."""

    cells: list[ClaimCell]

    @property
    def model_name(self) -> str:
        return self.cells[0].model_name

    @property
    def layers(self) -> list[int]:
        return [c.layer for c in self.cells]

    @property
    def early(self) -> ClaimCell:
        return self.cells[0]

    @property
    def late(self) -> ClaimCell:
        return self.cells[-1]
