"""C13: feature-specific error correction, the L^p exponent over two directions, in all four quadrants.

Ferreira da Silva & Heimersheim (2026): perturb an activation along two directions with the
norm-preserving exponential-map chart, find the contour where the L2 change of the residual
stream after block n-2 reaches T = 0.5 x min(axis maxima), normalise it by its axis intercepts
and fit |x|^p + |y|^p = 1. p = 2 is a smooth response; p > 2 means mixtures of the two directions
are resisted ("error correction"), reported for contrastive (difference-of-means) directions
but not for random controls. A linear response with correlated read-offs fakes p > 2 in the
first quadrant (p_app = 2 ln 2 / ln(2 (1 + rho))) and then shows p < 2 in the mixed-sign
quadrants, so every quadrant is measured (`mcis_claims.lp_fit`).

Directions, at the grid's earliest layer (last position, `blocks.L.hook_resid_pre`):
  contrastive  unit difference of means over the fit pool's 1000 windows (disjoint from the
               anchors) split by a property of the window read off its tokens, in this order:
               word_start, capitalised, digit, punctuation, function_word, quote_in_window,
               plural_s, past_ed, sentence_start (lp_fit.PROPERTIES; >= 20 windows a side);
  control      `randomdiffavg`: the unit mean of 30 differences of random real activations
               of the fit pool (construction-matched: a difference of two means of 30).
Pairs: the first 3 of each family (8 with --profile full) with |cos| < 0.1; 12 control
directions are drawn, and 12 more at a time (up to 384) only while too few pairs pass (a model
whose residual has a dominant dimension, Gemma-3 at layer 1). Rays: the four
half-axes and 3 interior rays (22.5, 45, 67.5 deg) per quadrant, up to 60 deg; intercepts by a
4-point grid and one log-log secant step. Anchors: the first 16 base prompts (32 with full).

C13a  H1  In the (+,+) quadrant, contrastive pairs have a larger p than control pairs: per
          anchor, median p over contrastive pairs / median p over control pairs > 1.05.
          H0: the median over anchors of that ratio <= 1.05.
C13b  H1  The excess is not the sign artefact: the same ratio in the mixed-sign quadrants
          (+,-) and (-,+) also exceeds 1.05. The artefact predicts it below 1.
Unit: the anchor (base prompt); the pairs are fixed for the run. Statistic: exact sign test /
order-statistic interval of the median log ratio (`stats.paired_log_ratio`) at the family-
adjusted level; 16 anchors give the 2nd smallest to 2nd largest at M of about 36.
Beside it: p per family and quadrant, dq = 1/p(+,+) + 1/p(+,-) - 1 (0 for the linear artefact,
-0.17 for a symmetric L^p at 2.4), rho by finite differences and p_app(rho), p from the KL.
Source: Ferreira da Silva & Heimersheim 2026 (arXiv 2606.24964); the science brief's critique
(../shared/research/science-brief-c5-c11-c13.md, section 1).
"""
import numpy as np

from mcis_claims import ClaimSpec, claim, lp_fit, stats

N_ANCHORS = {"smoke": 12, "default": 16, "full": 32}
N_PAIRS = {"smoke": 2, "default": 3, "full": 8}
SESOI = 1.05
COMMON = dict(source="Ferreira da Silva & Heimersheim 2026 (arXiv 2606.24964)", effect="median_ratio",
              sesoi=SESOI, alpha=0.01, kind="directional", alternative="greater")

SPEC_SAME = ClaimSpec(
    id="C13a", title="L^p: contrastive pairs resist mixtures more than random ones (+,+)",
    statement="In the first quadrant the iso-L2 contour of contrastive direction pairs has a larger L^p "
              "exponent than that of random-difference-average pairs, per anchor.",
    null_hypothesis="median over anchors of p(+,+) contrastive / p(+,+) control <= 1.05",
    statistic="exact sign test / order-statistic interval of the median log ratio; unit: anchor", **COMMON)
SPEC_MIXED = ClaimSpec(
    id="C13b", title="L^p: the excess holds in the mixed-sign quadrants (not the sign artefact)",
    statement="In the (+,-) and (-,+) quadrants contrastive pairs also have a larger L^p exponent than "
              "control pairs; a linear response with correlated read-offs would give p < 2 there instead.",
    null_hypothesis="median over anchors of p(mixed) contrastive / p(mixed) control <= 1.05",
    statistic="exact sign test / order-statistic interval of the median log ratio; unit: anchor", **COMMON)


def measure(cell) -> lp_fit.CellMeasurement:
    """Directions, pairs and the four-quadrant fits of one cell, run once and shared by C13a and C13b."""
    profile = cell.config.profile if cell.config.profile in N_PAIRS else "default"
    return cell.workspace.cached(("C13", cell.model_name, cell.layer), lambda: lp_fit.measure_cell(
        cell, n_anchors=N_ANCHORS[profile], n_pairs=N_PAIRS[profile]))


def judge_family_ratio(cell, judge, spec, quadrants):
    measured = measure(cell)
    result, family = measured.result, measured.family
    problem = None
    if result.censored.mean() > 0.2:
        problem = (f"{result.censored.mean():.0%} of rays never reached T within 60 degrees; "
                   "the contour is mostly censored")
    contrastive = result.family_median(family["contrastive"], quadrants)  # (anchors,) median p over the pairs
    control = result.family_median(family["control"], quadrants)
    estimate = stats.paired_log_ratio(
        contrastive, control, alternative=spec.alternative, confidence_level=spec.ci_level, sesoi=spec.sesoi,
        n_resamples=cell.config.n_resamples, random_state=cell.config.cell_seed(spec.id, cell.model_name, cell.layer))
    judge(estimate, problem=problem, costs={"lp_measure_s (shared by C13a and C13b)": measured.seconds},
          plot=lambda record, path: lp_fit.plot_contours(result, family, record, path),
          details={**measured.details(cell),
                   "quadrants_compared": [lp_fit.QUADRANT_NAMES[q] for q in quadrants],
                   "median_p_contrastive": float(np.nanmedian(contrastive)),
                   "median_p_control": float(np.nanmedian(control))})


@claim(SPEC_SAME, layers="earliest", sequential=False)
def test_c13a_contrastive_exceeds_control(cell, judge):
    judge_family_ratio(cell, judge, SPEC_SAME, quadrants=(0,))


@claim(SPEC_MIXED, layers="earliest", sequential=False)
def test_c13b_not_the_sign_artefact(cell, judge):
    judge_family_ratio(cell, judge, SPEC_MIXED, quadrants=(1, 2))
