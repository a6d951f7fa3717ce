"""One (model, layer) cell of a claim grid, and the run-wide workspace behind it.

A claim function receives a `ClaimCell`: the model, the site, the base prompts, the
site's Gaussian fit, the radius schedule and seeded generators, plus the shared
sweeps (e.g. real bases under covariance-matched directions) that several claims
use. The workspace loads each model once, samples each model's prompts once and
caches sweeps, so a grid of claims costs little more than its distinct sweeps.

`Arms` holds the named sweeps one claim compares and reads them at the KL threshold, so a
claim body states the comparison and the cell supplies levels, documents and seeds. Claim
C10's glue lives here too (its SAEs, synthetic bases and decoder directions swept from the
cell's bases), because it needs the cell's generators, caches and progress bars; what it
builds is in `synthetic.py`, the SAEs themselves in `sae.py` and `sae_training.py`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from . import directions as dirs
from .activations import SiteStats, fit_sites
from .config import RunConfig
from .models import LoadedModel, load_model
from .parity import ParityCheck, check_site
from .progress import progress_bar, stage
from .prompts import Corpus, PromptSet, load_corpus, sample_prompts
from .readouts import Crossing, max_slope_step, median_crossing, plateau_end_index, radius_at_threshold, sharpness
from .records import CurveSet
from .sae import SAE, load_sae
from .sae import check_site as check_sae_site
from .sae_training import C10A_L0, DEFAULT_L0S, default_sae
from .sites import site_name
from .engine import ROW_READOUTS, SweepResult, first_prompts, grow_prompts, reshape_result, sweep, sweep_points
from .synthetic import SyntheticBases, sae_decoder, synthetic_bases

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
    schedule_steps: int | None = None  # radii past this index are the extension (None: not extended)

    def first(self, n: int, threshold: float) -> "KindSweep":
        """The sweep of the first n bases, as a sweep of those bases alone would be (a sequential look).

        The extension radii stay only if one of those n bases needs them: the whole kind is extended
        when any of its curves is still below the threshold at the schedule's end."""
        if n >= self.kl.shape[0]:
            return self
        kl, radii, steps, result = self.kl[:n], self.radii_rel, self.schedule_steps, first_prompts(self.result, n)
        if steps is not None and not bool((kl[..., :steps].amax(dim=-1) < threshold).any()):
            kl, radii, steps = kl[..., :steps], radii[:steps], None
            result = _radii_slice(result, slice(None, len(radii)))
        return replace(self, kl=kl, radii_rel=radii, result=result, schedule_steps=steps)

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

    def shape_summary(self, first: int | None = None) -> dict:
        """Medians over bases of the step of steepest rise and of the sharpness of the per-base curves."""
        curves = self.per_base_curve(first)  # (n, S)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"max_slope_step_median": float(np.median(max_slope_step(curves))),
                    "sharpness_median": float(np.nanmedian(sharpness(curves)))}


def extension_radii(largest: float) -> np.ndarray:
    """Radii past the schedule's end, a factor sqrt(2) apart, up to MAX_RADIUS x the median norm."""
    if largest >= MAX_RADIUS:
        return np.empty(0)
    steps = int(np.ceil(2 * np.log2(MAX_RADIUS / largest) - 1e-9))
    return np.minimum(largest * np.sqrt(2.0) ** np.arange(1, steps + 1), MAX_RADIUS)


def _radii_slice(result: SweepResult, radii: slice) -> SweepResult:
    """Read-outs (n, K, S, ...) at the radii `radii` only."""
    return replace(result, **{name: None if getattr(result, name) is None else getattr(result, name)[:, :, radii]
                              for name in ROW_READOUTS})


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
    _planned_layers: dict = field(default_factory=dict)  # model name -> layers this run's cells will ask for
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

    def plan_layers(self, name: str, layers) -> None:
        """The layers of `name` this run will fit: the first fit reads them all in one forward."""
        self._planned_layers.setdefault(name, set()).update(int(layer) for layer in layers)

    def site_stats(self, name: str, layer: int) -> SiteStats:
        key = (name, layer)
        if key not in self._stats:
            pool = self.prompt_pool(name)
            fit = pool.subset(np.arange(self.config.n_prompts, len(pool)))
            layers = sorted({layer, *self._planned_layers.get(name, ())} - {l for n, l in self._stats if n == name})
            sites = ", ".join(site_name(l) for l in layers)
            with stage(f"fit {name} {sites} on {len(fit)} activations"):
                self._stats.update({(name, l): stats for l, stats in fit_sites(self.model(name), layers, fit.tokens).items()})
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

    def grown(self, key: tuple, n: int, grow):
        """A cached sweep over (at least) the first n base prompts: grow(cached or None) sweeps the
        prompts it lacks, so a sequential look at 64 prompts reuses the look at 32."""
        have = self._sweeps.get(key)
        if have is None or have.kl.shape[0] < n:
            self._sweeps[key] = grow(have)
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
    n_bases: int | None = None  # a sequential look: only the first n base prompts (None: all of them)

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
        """The base prompts of this look: all of them, or the first `n_bases` (a sequential look)."""
        bases = self.workspace.bases(self.model_name)
        if self.n_bases is None or self.n_bases >= len(bases):
            return bases
        return bases.subset(np.arange(self.n_bases))

    @property
    def n(self) -> int:
        """Base prompts at this look."""
        return len(self.prompts)

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
        """(n, d) clean last-position activations of the base prompts at the site: the very x the
        sweeps perturb (their clean forward, shared through the model's `CleanStates`)."""
        from .engine import clean_hidden_states

        return self.workspace.cached(
            ("bases", self.model_name, self.layer),
            lambda: clean_hidden_states(self.model, self.workspace.bases(self.model_name).tokens)[self.layer][:, -1].cpu(),
        )[:self.n]

    def gaussian_bases(self) -> torch.Tensor:
        """(n, d) draws from N(mu, Sigma), one per base prompt (the off-distribution bases of C1)."""
        return self.workspace.cached(  # drawn for every base, so a sequential look's draws are a prefix
            ("gaussian_bases", self.model_name, self.layer),
            lambda: self.stats.sample_gaussian((self.config.n_prompts,), self.generator("gaussian_bases")).float(),
        )[:self.n]

    def other_real_bases(self) -> torch.Tensor:
        """(n, d) the real activation of another prompt (from the fit pool), one per base prompt: placed in
        this prompt's context it is on-distribution but not this context's (C1's secondary arm)."""
        def draw():
            pick = torch.randint(self.stats.n_fit, (self.config.n_prompts,), generator=self.generator("other_real_bases"))
            return self.stats.activations[pick].float()

        return self.workspace.cached(("other_real_bases", self.model_name, self.layer), draw)[:self.n]

    def directions(self, kind: dirs.DirectionKind) -> torch.Tensor:
        """(n, K, d) unit directions of `kind`, the same for every claim that asks."""
        def draw():
            every = ClaimCell(self.workspace, self.model_name, self.layer)  # for every base, sliced to the look
            return kind.sample(self.stats, every.n, self.config.n_directions, self.generator("directions", repr(kind)),
                               bases=every.base_activations()).float()

        return self.workspace.cached(("directions", self.model_name, self.layer, repr(kind)), draw)[:self.n]

    def sweep_kind(self, kind: dirs.DirectionKind, *, base: str = "real", freeze_mlp: bool = False) -> KindSweep:
        """KL curves for real bases (or Gaussian ones, or another prompt's real activation: `other_real`)
        perturbed along `kind` over the radius schedule."""
        # freeze_mlp: every later MLP nonlinearity frozen at the base's own values (engine; claim C5)
        if base not in ("real", "gaussian", "other_real"):
            raise ValueError(f"base must be 'real', 'gaussian' or 'other_real'; got {base!r}")
        key = ("sweep", self.model_name, self.layer, repr(kind), base) + (("freeze_mlp",) if freeze_mlp else ())
        swept = self.workspace.grown(key, self.n, lambda have: self._sweep_kind(kind, base, freeze_mlp, have))
        return swept.first(self.n, self.config.kl_threshold)

    def _sweep_kind(self, kind, base, freeze_mlp=False, have: KindSweep | None = None) -> KindSweep:
        """The schedule's sweep; where a curve has not reached --kl-threshold by its end, the
        whole kind is swept on at `extension_radii` (so censoring is what is left at MAX_RADIUS).

        have: the same sweep over fewer bases (an earlier sequential look): only the bases it lacks
        are swept, and its bases are extended too if the new ones need it, so the result is the
        sweep of all n bases at once."""
        started = time.perf_counter()
        schedule, K = self.radii_rel, self.config.n_directions
        steps = len(schedule)

        def grow(radii, kept, extension=False):
            """All bases swept at `radii`: the bases `kept` lacks, joined after those it has."""
            return grow_prompts(kept, self.n, K * len(radii), lambda rows: self._sweep_radii(
                kind, base, rows, radii, extension=extension, freeze_mlp=freeze_mlp))

        result = grow(schedule, None if have is None else _radii_slice(have.result, slice(None, steps)))
        radii_rel = schedule
        if bool((result.kl.amax(dim=-1) < self.config.kl_threshold).any()):
            more = extension_radii(float(schedule[-1]))
            if more.size:
                kept = _radii_slice(have.result, slice(steps, None)) if have and have.schedule_steps else None
                result = _concat_radii(result, grow(more, kept, extension=True))
                radii_rel = np.concatenate([schedule, more])
        return KindSweep(kind=f"{kind.name}" + ("" if base == "real" else f"@{base}_base")
                         + ("+frozen_mlp" if freeze_mlp else ""), kl=result.kl, radii_rel=radii_rel, result=result,
                         seconds=time.perf_counter() - started + (have.seconds if have is not None else 0.0),
                         schedule_steps=steps if len(radii_rel) > steps else None)

    def _sweep_radii(self, kind, base, rows: slice, radii_rel, extension: bool = False,
                     freeze_mlp: bool = False) -> SweepResult:
        """The bases `rows` swept along their directions of `kind` at `radii_rel`."""
        radii = torch.tensor(radii_rel * self.stats.median_norm, dtype=torch.float32)
        label = (f"{self.model_name} {self.site} {kind!r} ({base} bases{', extended radii' if extension else ''}"
                 f"{', MLPs frozen' if freeze_mlp else ''})")
        u, tokens = self.directions(kind)[rows], self.prompts.tokens[rows]
        n, K, S = u.shape[0], u.shape[1], len(radii)
        with self._progress(label, n * K * S) as advance:
            if base == "real":
                return sweep(self.model, self.layer, tokens, u, radii, track_mlp=True,
                             progress=advance, freeze_mlp=freeze_mlp)
            g = (self.gaussian_bases() if base == "gaussian" else self.other_real_bases())[rows]
            points = (g[:, None, None, :] + radii[None, None, :, None] * u[:, :, None, :]).flatten(1, 2)
            result = sweep_points(self.model, self.layer, tokens, points, reference=g,
                                  track_mlp=True, progress=advance, freeze_mlp=freeze_mlp)
            return reshape_result(result, (K, S))

    @property
    def documents(self) -> np.ndarray:
        """(n,) the corpus document of each base prompt (bases share one only when n exceeds the documents)."""
        return self.prompts.document

    @property
    def radius_unit(self) -> str:
        """What a radius of 1 is at this site, for the record."""
        return f"median ||resid|| at the site = {self.stats.median_norm:.4g}"

    def paired_ratio(self, spec, a, b, *, censored_a=None, censored_b=None, first: int | None = None):
        """`spec`'s estimate of the median a / b over this cell's base prompts (the first `first` only, if given).

        Everything but the comparison comes from the spec and the cell: the alternative, the
        level, the SESOI, the units' documents, the resample count and a seed of this cell, so a
        claim body is the comparison itself (censored_*: arms whose value is only a lower bound)."""
        from . import stats

        return stats.paired_log_ratio(a, b, **self._estimate_args(spec, first), censored_a=censored_a,
                                      censored_b=censored_b)

    def paired_difference(self, spec, a, b, *, censored_a=None, censored_b=None):
        """As `paired_ratio`, for the median difference a - b."""
        from . import stats

        return stats.paired_difference(a, b, **self._estimate_args(spec), censored_a=censored_a, censored_b=censored_b)

    def _estimate_args(self, spec, first: int | None = None) -> dict:
        return dict(alternative=spec.alternative, confidence_level=spec.ci_level, sesoi=spec.sesoi,
                    documents=self.documents[:first], n_resamples=self.config.n_resamples,
                    random_state=self.config.cell_seed(spec.id, self.model_name, self.layer))

    def arms(self, spec, sweeps: dict, *, first: int | None = None) -> Arms:
        """`sweeps` ({name: KindSweep}) read at --kl-threshold over the first `first` bases, for `spec`."""
        return Arms(self, spec, sweeps, first)

    def _progress(self, label: str, total: int):
        return progress_bar(f"sweep {label}", total, "rows")

    # ---------------------------------------------------------------- claim C10: SAEs and what they build

    def saes(self, need: str = "both") -> tuple[SAE, list[SAE], str]:
        """The SAE for C10(a) and the SAEs (>= 2, by L0) for C10(b) of this cell, and where they came from.

        --sae DIR: that SAE for (a), and no SAEs for (b): need="b" skips the cell with the option to
        pass, rather than train default SAEs the user did not ask for. --sae DIR1,DIR2[,...]: the
        first for (a), all for (b). Otherwise the default TopK SAEs, trained on first use and cached:
        k = C10A_L0 for (a), every k in DEFAULT_L0S for (b).
        """
        if need not in ("a", "b", "both"):
            raise ValueError(f"need={need!r}: 'a', 'b' or 'both'")

        def default(k):
            return self.workspace.cached(("default_sae", self.model_name, self.layer, k),
                                         lambda: default_sae(self.model, self.layer, l0_target=k))

        paths = [p.strip() for p in str(self.config.sae or "").split(",") if p.strip()]
        if not paths:
            if need == "a":  # C10a alone needs only its own default SAE
                return default(C10A_L0), [], "default"
            saes = [default(k) for k in DEFAULT_L0S]
            return default(C10A_L0), saes, "default"
        user = [load_sae(path) for path in paths]
        for path, sae in zip(paths, user):
            check_sae_site(sae, self.model, self.layer, source=f"--sae {path}")
        if len(user) >= 2:
            return user[0], user, "--sae"
        if need == "b":
            import pytest

            pytest.skip(f"C10b compares SAEs of two L0s and --sae names one ({paths[0]}); "
                        f"pass --sae LOW_L0_DIR,HIGH_L0_DIR to run it")
        return user[0], [], "--sae (C10a only)"

    def sweep_bases(self, label: str, bases: torch.Tensor, u: torch.Tensor, *, reference: bool) -> KindSweep:
        """KL curves (m, K, S) for points bases + r u over the radius schedule, on the first m base prompts.

        bases (m, d), u (m, K, d). reference=True: compare with each base's own output (the bases
        are synthetic and replace the clean activation); False: the bases are the clean
        activations (a direction sweep). Cached by label and shape.
        """
        def compute():
            started = time.perf_counter()
            m, K = u.shape[:2]
            radii = self.radii_abs
            points = (bases[:, None, None, :] + radii[None, None, :, None] * u[:, :, None, :].float()).flatten(1, 2)
            with self._progress(f"{self.model_name} {self.site} {label}", m * K * len(radii)) as advance:
                result = sweep_points(self.model, self.layer, self.prompts.tokens[:m], points,
                                      reference=bases if reference else None, progress=advance)
            grid = (K, len(radii))  # (m, K*S, ...) -> (m, K, S, ...)
            result = replace(result, **{name: getattr(result, name).unflatten(1, grid)
                                        for name in ("kl", "resid_l2", "final_l2", "top1_changed")})
            return KindSweep(kind=label, kl=result.kl, radii_rel=self.radii_rel, result=result,
                             seconds=time.perf_counter() - started)

        return self.workspace.cached(("c10", self.model_name, self.layer, label, bases.shape[0], u.shape[1]), compute)

    def synthetic_bases(self, sae: SAE, first: int) -> SyntheticBases:
        """C10a's stand-ins for the first `first` base activations; latent densities from the site's pool."""
        return synthetic_bases(sae, self.base_activations()[:first], self.stats.activations, self.stats.median_norm,
                               lambda name: self.generator("c10", name))

    def sweep_synthetic(self, synthetic: SyntheticBases, kind: dirs.DirectionKind) -> dict[str, KindSweep]:
        """Each norm-matched stand-in swept along the directions of `kind` drawn for its real base,
        KL against the stand-in's own output: {name: KindSweep}."""
        u = self.directions(kind)[:synthetic.bases.shape[0]]  # (m, K, d)
        return {name: self.sweep_bases(f"{name} base (norm-matched) [{synthetic.sae.label}]", b, u, reference=True)
                for name, b in synthetic.matched.items()}

    def decoder_sweep(self, sae: SAE, first: int) -> KindSweep:
        """The first `first` bases swept along unit decoder rows of latents active on each, n_directions per base."""
        kind = sae_decoder(sae, "active")
        bases = self.base_activations()[:first]
        u = kind.sample(self.stats, first, self.config.n_directions, self.generator("c10", repr(kind)), bases=bases)
        return self.sweep_bases(repr(kind), bases, u, reference=False)


@dataclass
class Arms:
    """The named sweeps a claim compares, read at --kl-threshold over the cell's first `first` bases.

    The judged estimate and the ratios reported beside it take their settings from the spec
    (alternative, level, SESOI) and the cell (documents, resamples, seeds), so a claim body
    names only which arms it compares.
    """

    cell: ClaimCell
    spec: object  # the claim's ClaimSpec
    sweeps: dict  # name -> KindSweep, in report order
    first: int | None = None
    radius: dict = field(init=False)  # name -> (radius (m,), censored (m,)), as KindSweep.per_base_radius

    def __post_init__(self):
        self.radius = {name: s.per_base_radius(self.threshold, self.first) for name, s in self.sweeps.items()}

    @property
    def threshold(self) -> float:
        return self.cell.config.kl_threshold

    @property
    def documents(self) -> np.ndarray:
        """(m,) the corpus document of each base compared."""
        return self.cell.documents[:self.first]

    def relative(self, name: str, to: str) -> np.ndarray:
        """(m,) per base, the radius of arm `name` over that of arm `to`."""
        return self.radius[name][0] / self.radius[to][0]

    def estimate(self, a: str, b: str, *, relative_to: str | None = None):
        """The spec's judged estimate of the median radius a / b, censoring of a and b kept.

        relative_to: both radii first divided by that arm's, per base (it cancels in the ratio; the
        claim states it that way, and the report keeps it)."""
        (r_a, c_a), (r_b, c_b) = self.radius[a], self.radius[b]
        if relative_to is not None:
            r_a, r_b = self.relative(a, relative_to), self.relative(b, relative_to)
        return self.cell.paired_ratio(self.spec, r_a, r_b, censored_a=c_a, censored_b=c_b, first=self.first)

    def ratio(self, a: str, b: str, *, alternative: str, tag: str, censored: bool = True) -> dict:
        """Reported beside the verdict, not judged: the median radius a / b at the spec's level, no
        SESOI, seeded by `tag`; censored=False reads every radius as exact."""
        from . import stats

        (r_a, c_a), (r_b, c_b) = self.radius[a], self.radius[b]
        config = self.cell.config
        return stats.paired_log_ratio(
            r_a, r_b, alternative=alternative, confidence_level=self.spec.ci_level,
            censored_a=c_a if censored else None, censored_b=c_b if censored else None, documents=self.documents,
            n_resamples=config.n_resamples, random_state=config.cell_seed(tag, self.cell.model_name, self.cell.layer),
        ).to_dict()

    def median_radius(self, *names: str) -> dict:
        """{name: median radius over bases}, every arm unless names are given."""
        return {name: float(np.median(self.radius[name][0])) for name in names or self.radius}

    def censored_fraction(self, *names: str) -> dict:
        """{name: fraction of bases whose radius is only a lower bound}, every arm unless names are given."""
        return {name: float(self.radius[name][1].mean()) for name in names or self.radius}

    def at_thresholds(self, family: int, a: str, b: str) -> dict:
        """The estimate a / b again at the secondary KL thresholds (`secondary.at_thresholds`)."""
        from . import secondary

        return secondary.at_thresholds(self.spec, family, {a: self.sweeps[a], b: self.sweeps[b]},
                                       documents=self.cell.documents, select=slice(None, self.first))

    def curves(self, labels: dict | None = None) -> list[CurveSet]:
        """Each arm's per-base median curves for the figure, named labels[name] where given."""
        labels = labels or {}
        return [CurveSet(labels.get(name, name), s.radii_rel, s.per_base_curve(self.first))
                for name, s in self.sweeps.items()]

    def curve_shape(self, labels: dict | None = None) -> dict:
        """{label: KindSweep.shape_summary} of each arm over the compared bases."""
        labels = labels or {}
        return {labels.get(name, name): s.shape_summary(self.first) for name, s in self.sweeps.items()}


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
