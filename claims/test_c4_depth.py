"""C4: the layer-depth effect disappears.

The seed: "perturbing the 12th layer rather than the 2nd layer, [...] the difference between
real-other and random disappeared". Three gaps are tested over the layers of the grid, each
as the ratio of the radius at which KL first exceeds the threshold, paired over base prompts:

  C4   the seed's own comparison, in its historical (biased) form: towards another real
       activation, unit(b - x), against towards a Gaussian draw, unit(g - x);
  C4b  C1's corrected base gap: real bases against Gaussian N(mu, Sigma) bases, same
       cov_random_mixture directions;
  C4c  C2's corrected direction gap: real_mixture against cov_random_mixture directions.

H1  A gap present at the earliest layer of the grid is gone at the latest: the median radius
    ratio at the late layer lies within (1/1.2, 1.2).
H0  The late-layer ratio lies outside that margin (TOST), or there is no gap early.
Statistic: precondition early: the order-statistic interval of the median log ratio, at the
    family-adjusted level, lies wholly outside the margin (a gap inside the margin early cannot
    "disappear"; else the claim is negligible, with the early numbers); late: TOST of two
    one-sided exact sign tests of the median, margin ratio 1.2, chosen in advance as the SESOI
    of C1/C2 (1.1, 0.9) widened to allow for a smaller remaining effect. Censored radii are
    bounds, placed against the claim. Trend: Spearman rho of the per-layer median log ratio
    against depth, in details (descriptive).
Effect: median ratio at the late layer, order-statistic interval at 1 - 2 alpha / M.
Supported if the interval lies inside the margin; reversed ("still there") if wholly outside.
Source: the seed thread (layer 12 vs layer 2); Lee & Heimersheim 2024 for the corrected gaps.
"""
import numpy as np
from scipy import stats as scipy_stats

from mcis_claims import ClaimSpec, CurveSet, claim, directions, stats

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
    """Per-layer radius ratios, an existence test early, TOST late, the trend and the figure."""
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
    early_gap = per_layer[early.layer]
    low_margin, high_margin = 1 / (1 + spec.sesoi), 1 + spec.sesoi
    gap_early = early_gap["ci"][0] > high_margin or early_gap["ci"][1] < low_margin
    no_gap_early = low_margin < early_gap["ci"][0] and early_gap["ci"][1] < high_margin  # wholly inside
    early_text = (f"at the early layer {early.layer}: median ratio {early_gap['median_ratio']:.3g}, "
                  f"{100 * level:.4g}% CI [{early_gap['ci'][0]:.3g}, {early_gap['ci'][1]:.3g}]")
    r_a, r_b, c_a, c_b = radii[late.layer]
    estimate = stats.equivalence_log_ratio(
        r_a, r_b, margin=spec.sesoi, alpha=spec.alpha, censored_a=c_a, censored_b=c_b, documents=late.documents,
        n_resamples=late.config.n_resamples,
        random_state=late.config.cell_seed(spec.id, late.model_name, late.layer, "tost"))
    a_late, b_late = sweeps_at(late)
    medians = [float(np.median(np.log(r))) for r in ratios]
    trend_defined = len(grid.layers) > 2 and np.ptp(medians) > 0  # a flat profile has no rank correlation
    rho, rho_p = scipy_stats.spearmanr(grid.layers, medians) if trend_defined else (float("nan"),) * 2
    single_layer = len(grid.layers) < 2
    judge(
        estimate,
        curves=[CurveSet(f"{a_late.kind} / {b_late.kind}", np.asarray(grid.layers, dtype=float),
                         np.stack(ratios, axis=1), label="radius ratio per base prompt")],
        curve_ylabel="radius-to-threshold ratio", curve_xlabel="layer (perturbation site)",
        reference_lines={"no gap (ratio 1)": 1.0, f"margin 1/{1 + spec.sesoi:g}": 1 / (1 + spec.sesoi),
                         f"margin {1 + spec.sesoi:g}": 1 + spec.sesoi},
        details={"layers": grid.layers, "per_layer": per_layer, "early_layer": early.layer, "late_layer": late.layer,
                 "gap_present_early": bool(gap_early), "trend_spearman_rho": float(rho),
                 "trend_spearman_p": float(rho_p), "kl_threshold_nats": threshold,
                 "form": "historical unit(target - x)" if spec.id == "C4" else "corrected, base-free"},
        problem="the depth claim needs at least two layers; pass --layers with an early and a late layer"
        if single_layer else None if gap_early or no_gap_early else
        f"the precondition cannot be settled: the early gap neither lies wholly outside nor wholly inside the "
        f"margin ({low_margin:.3g}, {high_margin:.3g}) {early_text}",
        refuted_because=("negligible", f"never beyond the margin ({low_margin:.3g}, {high_margin:.3g}) early, so no "
                                       f"gap to disappear {early_text}") if no_gap_early and not single_layer else None,
    )
