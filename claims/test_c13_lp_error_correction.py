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
import time

import numpy as np
import torch

from mcis_claims import ClaimSpec, McisError, claim, lp_fit, stats

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


def measure(cell):
    """Directions, pairs and the four-quadrant fits of one cell, shared by C13a and C13b."""
    profile = cell.config.profile if cell.config.profile in N_PAIRS else "default"
    n = min(N_ANCHORS[profile], len(cell.prompts))
    site = cell.stats
    contrastive = lp_fit.contrastive_directions(cell.model.tokenizer, cell.fit_tokens, site.activations)
    names = list(contrastive)
    con = torch.stack([contrastive[name]["direction"] for name in names])
    ctl = lp_fit.random_diff_average_pool(site.activations, 4 * N_PAIRS[profile], N_PAIRS[profile],
                                          cell.generator("C13", "control"))
    con_pairs = lp_fit.low_cosine_pairs(con, N_PAIRS[profile])
    ctl_pairs = lp_fit.low_cosine_pairs(ctl, N_PAIRS[profile])
    if not con_pairs or not ctl_pairs:
        raise McisError(f"C13 at {cell.site}: no {'contrastive' if not con_pairs else 'control'} pair with "
                        f"|cos| < 0.1 among {len(names) if not con_pairs else len(ctl)} directions; try another layer")
    d1 = torch.stack([con[i] for i, _ in con_pairs] + [ctl[i] for i, _ in ctl_pairs])
    d2 = torch.stack([con[j] for _, j in con_pairs] + [ctl[j] for _, j in ctl_pairs])
    started = time.perf_counter()
    result = lp_fit.measure_lp(cell.model, cell.layer, cell.prompts.tokens[:n], cell.base_activations()[:n], d1, d2)
    seconds = time.perf_counter() - started
    family = {"contrastive": list(range(len(con_pairs))),
              "control": list(range(len(con_pairs), len(con_pairs) + len(ctl_pairs)))}
    pairs = {"contrastive": [f"{names[i]} x {names[j]} (cos {float(con[i] @ con[j]):+.3f})" for i, j in con_pairs],
             "control": [f"randomdiffavg {i} x {j} (cos {float(ctl[i] @ ctl[j]):+.3f})" for i, j in ctl_pairs]}
    return result, family, pairs, {name: {k: v for k, v in c.items() if k != "direction"}
                                   for name, c in contrastive.items()}, seconds


def details_of(cell, result, family, pairs, properties):
    same, mixed = (0,), (1, 2)
    quadrant = {}
    for fam, idx in family.items():
        for q, name in enumerate(lp_fit.QUADRANT_NAMES):
            quadrant[f"{fam} p({name})"] = float(np.nanmedian(result.p[:, idx, q]))
    p_same = result.p[:, :, 0]
    p_mixed = result.p[:, :, 1]
    with np.errstate(all="ignore"):
        dq = lp_fit.delta_q(p_same, p_mixed)
        rho = np.clip(result.rho, -0.45, 0.95)
        p_app = lp_fit.artefact_p(rho)
    ok = np.isfinite(p_same) & np.isfinite(p_app)
    r2 = float(np.corrcoef(p_same[ok], p_app[ok])[0, 1] ** 2) if ok.sum() > 2 else float("nan")
    return {
        "layer_read": f"L2 change of the last position after block {cell.model.n_layers - 2} (n - 2); perturbed at "
                      f"{cell.site}; exp-map chart, window 60 deg",
        "pairs": pairs, "contrastive_properties": properties, "n_anchors": int(result.p.shape[0]),
        "median_p_by_family_and_quadrant": quadrant,
        "median_dq": {fam: float(np.nanmedian(dq[:, idx])) for fam, idx in family.items()},
        "median_rho": {fam: float(np.nanmedian(result.rho[:, idx])) for fam, idx in family.items()},
        "median_p_app_of_rho": {fam: float(np.nanmedian(p_app[:, idx])) for fam, idx in family.items()},
        "r2_p_same_on_p_app": r2,
        "median_p_kl(++)": {fam: float(np.nanmedian(result.p_kl[:, idx, 0])) for fam, idx in family.items()},
        "censored_ray_fraction": float(result.censored.mean()),
        "engine_rows": result.rows,
        "mixed_quadrants": list(mixed), "same_quadrant": list(same),
    }


def judge_family_ratio(cell, judge, spec, quadrants):
    result, family, pairs, properties, seconds = cell.workspace.cached(
        ("C13", cell.model_name, cell.layer), lambda: measure(cell))
    problem = None
    if result.censored.mean() > 0.2:
        problem = (f"{result.censored.mean():.0%} of rays never reached T within 60 degrees; "
                   "the contour is mostly censored")
    contrastive = result.family_median(family["contrastive"], quadrants)
    control = result.family_median(family["control"], quadrants)
    estimate = stats.paired_log_ratio(
        contrastive, control, alternative=spec.alternative, confidence_level=spec.ci_level, sesoi=spec.sesoi,
        n_resamples=cell.config.n_resamples, random_state=cell.config.cell_seed(spec.id, cell.model_name, cell.layer))
    judge(estimate, problem=problem, costs={"lp_measure_s (shared by C13a and C13b)": seconds},
          plot=lambda record, path: lp_fit.plot_contours(result, family, record, path),
          details={**details_of(cell, result, family, pairs, properties),
                   "quadrants_compared": [lp_fit.QUADRANT_NAMES[q] for q in quadrants],
                   "median_p_contrastive": float(np.nanmedian(contrastive)),
                   "median_p_control": float(np.nanmedian(control))})


@claim(SPEC_SAME, layers="earliest")
def test_c13a_contrastive_exceeds_control(cell, judge):
    judge_family_ratio(cell, judge, SPEC_SAME, quadrants=(0,))


@claim(SPEC_MIXED, layers="earliest")
def test_c13b_not_the_sign_artefact(cell, judge):
    judge_family_ratio(cell, judge, SPEC_MIXED, quadrants=(1, 2))
