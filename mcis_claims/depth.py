"""Depth claims (C4): a gap between two arms at every layer of a grid, and whether it is gone late.

The gap at a layer is the median over base prompts of the radius ratio a / b (radius where KL
first passes --kl-threshold), with its order-statistic interval. C4 decides in three steps:

layer_gaps        every layer's radii and gap, at the verdict's own level 1 - 2 alpha / M
EarlyGap          step 1, the precondition: the early interval lies wholly outside the margin
late_equivalence  step 2: TOST of the late median ratio within the margin, decided as the verdict is
interaction       step 3: per base prompt, early log ratio minus late log ratio, beyond the margin
LayerGaps.trend   descriptive: Spearman rho of the per-layer median log ratio against depth
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from . import stats
from .verdict import ClaimSpec, Decision, decide


@dataclass(frozen=True)
class EarlyGap:
    """Step 1: whether the early gap's interval lies wholly outside the margin (1 / (1 + m), 1 + m)."""

    layer: int
    median_ratio: float
    ci: list  # [low, high] at `level`
    level: float
    margin: tuple  # (low, high) on the ratio scale

    @property
    def below(self) -> bool:
        return self.ci[1] < self.margin[0]

    @property
    def present(self) -> bool:
        """Wholly outside the margin: a gap that can disappear."""
        return self.ci[0] > self.margin[1] or self.below

    @property
    def absent(self) -> bool:
        """Wholly inside the margin: never a gap beyond it early."""
        return self.margin[0] < self.ci[0] and self.ci[1] < self.margin[1]

    @property
    def outcome(self) -> str:
        return ("gap beyond the margin early" if self.present else
                "no gap beyond the margin early" if self.absent else "unsettled")

    def describe(self) -> str:
        return (f"at the early layer {self.layer}: median ratio {self.median_ratio:.3g}, "
                f"{100 * self.level:.4g}% CI [{self.ci[0]:.3g}, {self.ci[1]:.3g}]")

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "early_median_ratio": self.median_ratio, "early_ci": self.ci,
                "ci_level": self.level, "margin": list(self.margin)}


@dataclass(frozen=True)
class LayerGaps:
    """Per layer of the grid: each arm's radii and the gap between them."""

    layers: list
    radii: dict  # layer -> (r_a, r_b, censored_a, censored_b), each (n,)
    ratios: list  # per layer, (n,) r_a / r_b: the figure's per-prompt curves
    per_layer: dict  # layer -> {"median_ratio", "ci", "ci_level", "censored_fraction", "kinds"}

    def early_gap(self, layer: int, *, margin: float) -> EarlyGap:
        gap = self.per_layer[layer]
        return EarlyGap(layer=layer, median_ratio=gap["median_ratio"], ci=gap["ci"], level=gap["ci_level"],
                        margin=(1 / (1 + margin), 1 + margin))

    def trend(self) -> tuple[float, float]:
        """(rho, p): Spearman of the per-layer median log ratio against depth; NaN for < 3 layers or a flat profile."""
        medians = [float(np.median(np.log(r))) for r in self.ratios]
        if not (len(self.layers) > 2 and np.ptp(medians) > 0):  # a flat profile has no rank correlation
            return float("nan"), float("nan")
        rho, p = scipy_stats.spearmanr(self.layers, medians)
        return float(rho), float(p)


def layer_gaps(spec: ClaimSpec, grid, sweeps_at, *, level: float) -> LayerGaps:
    """sweeps_at(cell) -> (sweep a, sweep b) at each layer; each gap two-sided at `level`, seeded per layer."""
    threshold = grid.early.config.kl_threshold
    ratios, per_layer, radii = [], {}, {}
    for cell in grid.cells:
        a, b = sweeps_at(cell)
        (r_a, c_a), (r_b, c_b) = a.per_base_radius(threshold), b.per_base_radius(threshold)
        radii[cell.layer] = (r_a, r_b, c_a, c_b)
        ratios.append(r_a / r_b)
        seed = cell.config.cell_seed(spec.id, cell.model_name, cell.layer)
        gap = stats.paired_log_ratio(r_a, r_b, alternative="two-sided", confidence_level=level,
                                     censored_a=c_a, censored_b=c_b, documents=cell.documents,
                                     n_resamples=cell.config.n_resamples, random_state=seed)
        per_layer[cell.layer] = {"median_ratio": gap.value, "ci": list(gap.confidence_interval), "ci_level": level,
                                 "censored_fraction": gap.sample.censored, "kinds": [a.kind, b.kind]}
    return LayerGaps(layers=grid.layers, radii=radii, ratios=ratios, per_layer=per_layer)


@dataclass(frozen=True)
class LateGap:
    """Step 2: the late layer's TOST estimate (the claim's effect) and its decision."""

    estimate: stats.EffectEstimate  # the median ratio, TOST within the margin
    decision: Decision


def late_equivalence(spec: ClaimSpec, late, radii, *, family: int) -> LateGap:
    """TOST of the late median ratio within (1 / (1 + sesoi), 1 + sesoi), decided as the verdict is."""
    r_a, r_b, c_a, c_b = radii
    estimate = stats.equivalence_log_ratio(
        r_a, r_b, margin=spec.sesoi, alpha=spec.alpha, censored_a=c_a, censored_b=c_b, documents=late.documents,
        n_resamples=late.config.n_resamples,
        random_state=late.config.cell_seed(spec.id, late.model_name, late.layer, "tost"))
    return LateGap(estimate=estimate, decision=decide(spec, estimate, family=family))


def interaction(spec: ClaimSpec, early_radii, late_radii, late, *, shrinks_from: str, family: int) -> dict:
    """The paired shrinkage of the gap, early log ratio minus late log ratio, judged beyond log(1 + margin).

    log(a_e / b_e) - log(a_l / b_l) = log(a_e b_l) - log(b_e a_l): a product of lower bounds is a
    lower bound, so a unit is censored on a side where either of its radii is.
    """
    a_e, b_e, ca_e, cb_e = early_radii
    a_l, b_l, ca_l, cb_l = late_radii
    greater = shrinks_from == "above"
    sub = ClaimSpec(id=f"{spec.id}:interaction", title="gap shrinks with depth", statement="early - late log ratio",
                    source=spec.source, null_hypothesis="no shrinkage beyond the margin", statistic=spec.statistic,
                    effect="median_ratio", sesoi=(1 + spec.sesoi) if greater else 1 / (1 + spec.sesoi),
                    alpha=spec.alpha, alternative="greater" if greater else "less")
    estimate = stats.paired_log_ratio(
        a_e * b_l, b_e * a_l, alternative=sub.alternative, confidence_level=sub.ci_level, sesoi=sub.sesoi,
        censored_a=ca_e | cb_l, censored_b=cb_e | ca_l, documents=late.documents,
        n_resamples=late.config.n_resamples,
        random_state=late.config.cell_seed(spec.id, late.model_name, late.layer, "interaction"))
    decision = decide(sub, estimate, family=family)
    return {"effect": "median of (early ratio / late ratio) per base prompt", "value": decision.effect,
            "ci": list(decision.interval), "ci_level": decision.level, "sesoi": sub.sesoi,
            "alternative": sub.alternative, "p": decision.p_value, "p_adj": decision.p_adjusted,
            "verdict": decision.verdict, "summary": decision.reason}
