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

from mcis_claims import ClaimSpec, CurveSet, claim, depth, directions

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
    level = 1 - 2 * spec.alpha / judge.family  # the verdict's own level, for the early precondition too
    gaps = depth.layer_gaps(spec, grid, sweeps_at, level=level)  # per layer: radii, ratios, gap interval
    early, late = grid.early, grid.late
    single_layer = len(grid.layers) < 2
    early_gap = gaps.early_gap(early.layer, margin=spec.sesoi)  # step 1
    low_margin, high_margin = early_gap.margin
    late_gap = depth.late_equivalence(spec, late, gaps.radii[late.layer], family=judge.family)  # step 2
    interaction = None if single_layer else depth.interaction(  # step 3
        spec, gaps.radii[early.layer], gaps.radii[late.layer], late,
        shrinks_from="above" if not early_gap.below else "below", family=judge.family)
    a_late, b_late = sweeps_at(late)
    rho, rho_p = gaps.trend()

    problem = refutation = None
    if single_layer:
        problem = "the depth claim needs at least two layers; pass --layers with an early and a late layer"
    elif early_gap.absent:
        refutation = f"never beyond the margin ({low_margin:.3g}, {high_margin:.3g}) early, so no gap to disappear " \
                     f"{early_gap.describe()}"
    elif not early_gap.present:
        problem = (f"the precondition cannot be settled: the early gap neither lies wholly outside nor wholly inside "
                   f"the margin ({low_margin:.3g}, {high_margin:.3g}) {early_gap.describe()}")
    elif late_gap.decision.verdict == "reversed":
        refutation = "still there late: the late-layer interval lies wholly outside the margin"
    elif late_gap.decision.verdict == "supported" and interaction["verdict"] != "supported":
        problem = (f"the late gap lies inside the margin, but the per-prompt shrinkage from layer {early.layer} to "
                   f"{late.layer} is not settled beyond the margin: {interaction['summary']}")
    judge(
        late_gap.estimate,
        curves=[CurveSet(f"{a_late.kind} / {b_late.kind}", np.asarray(grid.layers, dtype=float),
                         np.stack(gaps.ratios, axis=1), label="radius ratio per base prompt")],
        curve_ylabel="radius-to-threshold ratio", curve_xlabel="layer (perturbation site)",
        reference_lines={"no gap (ratio 1)": 1.0, f"margin 1/{1 + spec.sesoi:g}": 1 / (1 + spec.sesoi),
                         f"margin {1 + spec.sesoi:g}": 1 + spec.sesoi},
        details={"layers": grid.layers, "per_layer": gaps.per_layer, "early_layer": early.layer,
                 "late_layer": late.layer, "precondition": early_gap.to_dict(),
                 "gap_present_early": bool(early_gap.present),
                 "interaction": interaction,
                 "refutation": "still there late" if refutation and refutation.startswith("still") else
                               "never beyond the margin early" if refutation else None,
                 "trend_spearman_rho": rho, "trend_spearman_p": rho_p,
                 "trend": "descriptive (Spearman rho of the per-layer median log ratio against depth)",
                 "kl_threshold_nats": grid.early.config.kl_threshold,
                 "form": "historical unit(target - x)" if spec.id == "C4" else "corrected, base-free"},
        problem=problem,
        refuted_because=(("reversed" if refutation.startswith("still") else "negligible"), refutation)
        if refutation and not problem else None,
    )
