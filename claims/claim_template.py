"""CX: <one-line title>.            <- copy to claims/test_cX_<name>.py and fill in

H1  <the claim, in one or two sentences, stated before any data is seen>
H0  <what the statistic would show if the claim were false>
Statistic: <what is paired over base prompts>; the exact sign test of the median against the SESOI
Effect: <effect name>, order-statistic interval at 1 - 2 alpha / M (M: the family of claim cells).
Supported if the interval lies beyond the SESOI; negligible if wholly short of it; reversed if
wholly on the other side of the null.
Source: <paper / thread>
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions

SPEC = ClaimSpec(
    id="CX",                       # stable, never reused
    title="<title>",
    statement="<H1>",
    source="<source>",
    null_hypothesis="<H0>",
    statistic="exact sign test of the median log radius ratio, paired over base prompts",
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

    # the spec and the cell supply the rest (alternative, level, SESOI, documents, seed); censored: lower bounds
    estimate = cell.paired_ratio(SPEC, radius_a, radius_b, censored_a=censored_a, censored_b=censored_b)
    judge(
        estimate,
        curves=[CurveSet("A", a.radii_rel, a.per_base_curve()), CurveSet("B", b.radii_rel, b.per_base_curve())],
        details={"kl_threshold_nats": threshold, "median_radius_a": float(np.median(radius_a))},
        problem=None,  # a failed health check of your own, as one line: the verdict is then inconclusive
    )
