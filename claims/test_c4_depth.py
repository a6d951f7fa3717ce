"""C4: the layer-depth effect disappears.

The seed: "perturbing the 12th layer rather than the 2nd layer, [...] the difference between
real-other and random disappeared". Three gaps are tested over the layers of the grid, each
as the ratio of the radius at which KL first exceeds the threshold, paired over base prompts:

  C4   the seed's own comparison, in its historical (biased) form: towards another real
       activation, unit(b - x), against towards a Gaussian draw, unit(g - x);
  C4b  C1's corrected base gap: real bases against Gaussian N(mu, Sigma) bases, same
       cov_random_mixture directions;
  C4c  C2's corrected direction gap: real_mixture against cov_random_mixture directions.

H1  A gap present at the earliest layer of the grid is gone at the latest: the late-layer median
    radius ratio lies within (1/1.2, 1.2), and per base prompt the gap shrank by more than the margin.
H0  The gap is still outside the margin late, or there is no gap beyond the margin early.
Grid: by default 1, n/4, n/2, 3n/4 and n-1 (five layers on a 30-layer model, so the depth profile
    means something); an explicit --layers sets it. Early = the grid's first layer, late = its last.
Statistic, in three steps, each at the family-adjusted level 1 - 2 alpha / M:
    1. precondition: the order-statistic interval of the early median log ratio lies wholly
       OUTSIDE the margin (a gap inside the margin early cannot "disappear"). Wholly inside:
       negligible ("never beyond the margin early"); straddling: inconclusive.
    2. primary, late: TOST of two one-sided exact sign tests of the median, margin ratio 1.2,
       chosen in advance as the SESOI of C1/C2 (1.1, 0.9) widened to allow a smaller remaining
       effect. Wholly outside the margin: reversed ("still there late").
    3. primary, paired interaction: per base prompt, the early log ratio minus the late log ratio
       (the same base prompts at every layer), an exact sign test of its median beyond log 1.2 in
       the direction of the early gap. TOST supported but the interaction not: inconclusive.
    Censored radii are bounds, placed against the claim (an interaction unit uses the bounds of
    its four radii). Depth profile (descriptive): per-layer median ratio with its interval and a
    per-layer Spearman trend.
Effect: median ratio at the late layer, order-statistic interval at 1 - 2 alpha / M.
Supported if steps 1-3 all hold; the record's `refutation` says which way a refuted cell failed.
Source: the seed thread (layer 12 vs layer 2); Lee & Heimersheim 2024 for the corrected gaps.
"""
import numpy as np
from scipy import stats as scipy_stats

from mcis_claims import ClaimSpec, CurveSet, claim, directions, stats
from mcis_claims.verdict import decide

MARGIN = 0.2  # late-layer ratio within (1/1.2, 1.2)
COMMON = dict(null_hypothesis="the late-layer median radius ratio lies outside (1/1.2, 1.2), or no gap early",
              statistic="early: median log radius ratio wholly outside the margin; late: TOST (two one-sided "
                        "exact sign tests of the median), margin ratio 1.2; paired over base prompts",
              effect="median_ratio", sesoi=MARGIN, alpha=0.01, kind="equivalence")

SPEC = ClaimSpec(
    id="C4", title="Depth: real-other vs random gap disappears (historical form)",
    statement="Perturbing towards another real activation vs towards a Gaussian draw (unit(target - x), the "
              "seed's form) differs at the early layer but not at the late layer.",
    source="seed thread (layer 12 vs layer 2)", **COMMON)
SPEC_BASE = ClaimSpec(
    id="C4b", title="Depth: C1's real-vs-Gaussian base gap disappears",
    statement="The plateau gap between real and Gaussian bases (C1) present early is gone at the late layer.",
    source="seed thread; corrected baseline of Lee & Heimersheim 2024", **COMMON)
SPEC_DIRECTION = ClaimSpec(
    id="C4c", title="Depth: C2's real-vs-cov-random direction gap disappears",
    statement="The sensitivity gap between real_mixture and cov_random_mixture directions (C2) present early "
              "is gone at the late layer.",
    source="seed thread; corrected baseline of Lee & Heimersheim 2024", **COMMON)


@claim(SPEC)
def test_c4_historical_gap(grid, judge):
    judge_depth(SPEC, grid, judge, lambda cell: (cell.sweep_kind(directions.toward("real")),
                                                 cell.sweep_kind(directions.toward("gaussian"))))


@claim(SPEC_BASE)
def test_c4b_base_gap(grid, judge):
    kind = directions.cov_random_mixture()
    judge_depth(SPEC_BASE, grid, judge, lambda cell: (cell.sweep_kind(kind), cell.sweep_kind(kind, base="gaussian")))


@claim(SPEC_DIRECTION)
def test_c4c_direction_gap(grid, judge):
    judge_depth(SPEC_DIRECTION, grid, judge, lambda cell: (cell.sweep_kind(directions.real_mixture()),
                                                           cell.sweep_kind(directions.cov_random_mixture())))


def judge_depth(spec, grid, judge, sweeps_at):
    """Per-layer radius ratios; the early precondition, TOST late and the paired interaction; the figure."""
    threshold = grid.early.config.kl_threshold
    level = 1 - 2 * spec.alpha / judge.family  # the verdict's own level, for the early precondition too
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
    early, late = grid.early, grid.late
    single_layer = len(grid.layers) < 2
    early_gap = per_layer[early.layer]
    low_margin, high_margin = 1 / (1 + spec.sesoi), 1 + spec.sesoi
    gap_above, gap_below = early_gap["ci"][0] > high_margin, early_gap["ci"][1] < low_margin
    gap_early = gap_above or gap_below
    no_gap_early = low_margin < early_gap["ci"][0] and early_gap["ci"][1] < high_margin  # wholly inside
    early_text = (f"at the early layer {early.layer}: median ratio {early_gap['median_ratio']:.3g}, "
                  f"{100 * level:.4g}% CI [{early_gap['ci'][0]:.3g}, {early_gap['ci'][1]:.3g}]")
    r_a, r_b, c_a, c_b = radii[late.layer]
    estimate = stats.equivalence_log_ratio(
        r_a, r_b, margin=spec.sesoi, alpha=spec.alpha, censored_a=c_a, censored_b=c_b, documents=late.documents,
        n_resamples=late.config.n_resamples,
        random_state=late.config.cell_seed(spec.id, late.model_name, late.layer, "tost"))
    late_decision = decide(spec, estimate, family=judge.family)
    interaction = None if single_layer else _interaction(spec, radii[early.layer], radii[late.layer], late,
                                                         shrinks_from="above" if not gap_below else "below",
                                                         family=judge.family)
    a_late, b_late = sweeps_at(late)
    medians = [float(np.median(np.log(r))) for r in ratios]
    trend_defined = len(grid.layers) > 2 and np.ptp(medians) > 0  # a flat profile has no rank correlation
    rho, rho_p = scipy_stats.spearmanr(grid.layers, medians) if trend_defined else (float("nan"),) * 2

    problem = refutation = None
    if single_layer:
        problem = "the depth claim needs at least two layers; pass --layers with an early and a late layer"
    elif no_gap_early:
        refutation = f"never beyond the margin ({low_margin:.3g}, {high_margin:.3g}) early, so no gap to disappear " \
                     f"{early_text}"
    elif not gap_early:
        problem = (f"the precondition cannot be settled: the early gap neither lies wholly outside nor wholly inside "
                   f"the margin ({low_margin:.3g}, {high_margin:.3g}) {early_text}")
    elif late_decision.verdict == "reversed":
        refutation = "still there late: the late-layer interval lies wholly outside the margin"
    elif late_decision.verdict == "supported" and interaction["verdict"] != "supported":
        problem = (f"the late gap lies inside the margin, but the per-prompt shrinkage from layer {early.layer} to "
                   f"{late.layer} is not settled beyond the margin: {interaction['summary']}")
    judge(
        estimate,
        curves=[CurveSet(f"{a_late.kind} / {b_late.kind}", np.asarray(grid.layers, dtype=float),
                         np.stack(ratios, axis=1), label="radius ratio per base prompt")],
        curve_ylabel="radius-to-threshold ratio", curve_xlabel="layer (perturbation site)",
        reference_lines={"no gap (ratio 1)": 1.0, f"margin 1/{1 + spec.sesoi:g}": 1 / (1 + spec.sesoi),
                         f"margin {1 + spec.sesoi:g}": 1 + spec.sesoi},
        details={"layers": grid.layers, "per_layer": per_layer, "early_layer": early.layer, "late_layer": late.layer,
                 "precondition": {"outcome": "gap beyond the margin early" if gap_early else
                                  "no gap beyond the margin early" if no_gap_early else "unsettled",
                                  "early_median_ratio": early_gap["median_ratio"], "early_ci": early_gap["ci"],
                                  "ci_level": level, "margin": [low_margin, high_margin]},
                 "gap_present_early": bool(gap_early),
                 "interaction": interaction,
                 "refutation": "still there late" if refutation and refutation.startswith("still") else
                               "never beyond the margin early" if refutation else None,
                 "trend_spearman_rho": float(rho), "trend_spearman_p": float(rho_p),
                 "trend": "descriptive (Spearman rho of the per-layer median log ratio against depth)",
                 "kl_threshold_nats": threshold,
                 "form": "historical unit(target - x)" if spec.id == "C4" else "corrected, base-free"},
        problem=problem,
        refuted_because=(("reversed" if refutation.startswith("still") else "negligible"), refutation)
        if refutation and not problem else None,
    )


def _interaction(spec, early_radii, late_radii, late, *, shrinks_from, family):
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
            "alternative": sub.alternative, "p": decision.p_value, "p_adj": decision.p_adjusted, "verdict": decision.verdict,
            "summary": decision.reason}
