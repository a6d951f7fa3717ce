"""CX: <one-line title>.            <- copy to claims/test_cX_<name>.py and fill in

H1  <the claim, in one or two sentences, stated before any data is seen>
H0  <what the statistic would show if the claim were false>
Statistic: <test, what is paired over base prompts>
Effect: <effect name>, (1 - 2 alpha) BCa bootstrap CI over base prompts.
Supported if the CI lies beyond the SESOI and the adjusted p < alpha.
Source: <paper / thread>
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, stats

SPEC = ClaimSpec(
    id="CX",                       # stable, never reused
    title="<title>",
    statement="<H1>",
    source="<source>",
    null_hypothesis="<H0>",
    statistic="Wilcoxon signed-rank on log radius ratio, paired over base prompts",
    effect="median_ratio",         # the name of the EffectEstimate it is judged on
    sesoi=0.9,                     # smallest effect of interest, on the effect's own scale
    alpha=0.01,
    kind="directional",            # directional | equivalence | existence
    alternative="less",            # greater | less
)


@claim(SPEC)
def test_cx_template(cell, judge):
    # cell: one model at one site. Sweeps are cached, so reusing a kind another claim swept is free.
    threshold = cell.config.kl_threshold
    a = cell.sweep_kind(directions.real_mixture())          # KL curves (n bases, K directions, S radii)
    b = cell.sweep_kind(directions.cov_random_mixture())
    radius_a, censored_a = a.per_base_radius(threshold)      # radius where KL first passes the threshold
    radius_b, censored_b = b.per_base_radius(threshold)

    estimate = stats.paired_log_ratio(
        radius_a, radius_b, alternative=SPEC.alternative, confidence_level=SPEC.ci_level, sesoi=SPEC.sesoi,
        n_resamples=cell.config.n_resamples, random_state=cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer),
    )
    judge(
        estimate,
        curves=[CurveSet("A", a.radii_rel, a.per_base_curve()), CurveSet("B", b.radii_rel, b.per_base_curve())],
        details={"kl_threshold_nats": threshold, "median_radius_a": float(np.median(radius_a))},
        problem=cell.censoring_problem(censored_a, censored_b),  # health check: inconclusive, not a crash
    )
