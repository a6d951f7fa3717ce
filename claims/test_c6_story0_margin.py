"""C6: Story 0 is not the explanation: the plateau holds for low-margin prompts too.

Story 0 (seed): perturbations change the logprobs, but the answer does not change because the
clean top-1 logit margin was large. If so, the plateau (C1's effect) would live in the
high-margin prompts only. The claim is that it shows in the full KL for low-margin prompts.
H1  Among base prompts whose clean top-1 margin (top-1 minus top-2 logit) is at most the
    median margin of the cell, KL first exceeds the threshold at a larger radius from the real
    base than from its Gaussian N(mu, Sigma) base, along the same cov-random directions.
H0  Within the low-margin half, the median radius ratio (real / Gaussian base) is at most 1.
Statistic: exact sign test of the median log(radius ratio), paired over the low-margin base prompts
    (C1's statistic on C1's sweeps, restricted to that half; the split uses the clean margin
    only, never the radii).
Effect: median radius ratio, order-statistic interval at 1 - 2 alpha / M over the low-margin bases.
Supported if the CI lies above 1.1 (equivalently the sign test's p_adj <= 0.01) (C1's SESOI: the
    plateau counts as present in the low-margin half by the same standard as overall).
    Negligible or reversed there is the refutation claims.md names: "plateau only where the
    margin is large".
Why this is the judged cell and the interaction is not: the claim is that the plateau exists
    at low margin, which the low-margin half tests directly, paired within each prompt. The
    interaction (low half's median log ratio minus the high half's) compares two halves made
    of different bases, an unpaired comparison of two medians; the project's decision rule
    (a paired median, sign test and order-statistic interval) does not apply to it. It is
    reported in details, descriptive only: the difference of the halves' medians, a
    conservative order-statistic interval of that difference (each half's interval at
    1 - alpha, one-sided alpha / 2 per end), and Mood's median test (scipy.stats.median_test).
    A plateau smaller at low margin but still beyond the SESOI does not refute the claim.
Margins, both arms: the real arm's margin is the clean margin of the prompt's own output; the
    Gaussian arm's margin is its own, the clean margin of the output when the Gaussian base
    replaces the activation (row 0 of the Gaussian sweep). Gaussian bases could have lower
    margins than real ones, which Story 0 would turn into a smaller radius; so a secondary,
    descriptive estimate keeps only the pairs where both arms' margins are at most the
    pooled median margin ("both low").
Reported beside it (not judged): the same estimate for the high-margin half.
Censoring as C1: a curve that never reaches the threshold is a lower bound, placed against the
    claim; bases come from distinct documents.
Source: the seed thread ("Story 0 ... I don't think the KL divergence would behave like that").
"""
from mcis_claims import ClaimSpec, claim, directions, margins, secondary, stats

SPEC = ClaimSpec(
    id="C6",
    title="Story 0 is not the explanation (plateau at low margin)",
    statement="The plateau (real bases need a larger radius than Gaussian bases before KL passes the threshold) "
              "holds for base prompts whose clean top-1 margin is below the median, not only for high-margin ones.",
    source="seed thread (Story 0)",
    null_hypothesis="median radius ratio (real / Gaussian base) <= 1 within the low-margin half",
    statistic="exact sign test of the median log radius-to-threshold ratio, paired over the low-margin base prompts",
    effect="median_ratio",
    sesoi=1.1,
    alpha=0.01,
    kind="directional",
    alternative="greater",
)


@claim(SPEC)
def test_c6_story0_margin(cell, judge):
    kind = directions.cov_random_mixture()
    threshold = cell.config.kl_threshold
    real = cell.sweep_kind(kind, base="real")  # C1's sweeps: cached, free when C1 ran
    gaussian = cell.sweep_kind(kind, base="gaussian")
    radius_real = real.per_base_radius(threshold)  # (radius, censored), each (n,)
    radius_gauss = gaussian.per_base_radius(threshold)
    halves = margins.split_by_margin(real, gaussian)  # (n,) masks from the clean margins only, never the radii

    estimate = margins.paired_ratio_within(cell, SPEC, halves.low, radius_real, radius_gauss)
    high = margins.paired_ratio_within(cell, SPEC, halves.high, radius_real, radius_gauss, alternative="greater")
    both_low = (margins.paired_ratio_within(cell, SPEC, halves.both_low, radius_real, radius_gauss,
                                            alternative="greater")
                if halves.both_low.sum() >= stats.MIN_PAIRS else None)
    at_thresholds = secondary.at_thresholds(SPEC, judge.family, {"real": real, "gaussian": gaussian},
                                            documents=cell.documents, select=halves.low)
    judge(
        estimate,
        curves=margins.curves_by_half(real, gaussian, halves),
        details={"directions": repr(kind), "kl_threshold_nats": threshold,
                 **margins.story0_details(halves, radius_real, radius_gauss, estimate=estimate, high=high,
                                          both_low=both_low, alpha=SPEC.alpha, at_kl_thresholds=at_thresholds),
                 "radius_unit": cell.radius_unit},
    )
