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
import numpy as np
from scipy import stats as scipy_stats

from mcis_claims import ClaimSpec, CurveSet, claim, directions, secondary, stats

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


def margin_interaction(estimate_low, estimate_high, *, alpha: float) -> dict:
    """Descriptive: the low half's median log ratio minus the high half's, unpaired (different bases).

    Each unit at its censoring bound (as `PairedSample.point`); the interval is conservative:
    each half's order-statistic interval with one-sided alpha / 2 per end, combined end to end.
    """
    low, high = estimate_low.sample.by_document(), estimate_high.sample.by_document()
    a, b = low.point[np.isfinite(low.point)], high.point[np.isfinite(high.point)]
    out = {"note": "descriptive only: an unpaired comparison of two halves of different bases; "
                   "not decided by the paired sign-test rule",
           "n_low": int(a.size), "n_high": int(b.size)}
    if a.size == 0 or b.size == 0:
        return out
    ia = stats.median_interval(low.low, low.high, alpha=alpha / 2)
    ib = stats.median_interval(high.low, high.high, alpha=alpha / 2)
    mood = scipy_stats.median_test(a, b, ties="ignore") if np.ptp(np.concatenate([a, b])) > 0 else None
    out.update({
        "median_log_ratio": {"low": float(np.median(a)), "high": float(np.median(b))},
        "difference_low_minus_high_log": float(np.median(a) - np.median(b)),
        "ratio_of_median_ratios_low_over_high": float(np.exp(np.median(a) - np.median(b))),
        "conservative_interval_log": [ia.low - ib.high, ia.high - ib.low],
        "interval_level": 1 - 2 * alpha,
        "mood_median_test_p": None if mood is None else float(mood.pvalue),
        "mood_median_test_table": None if mood is None else mood.table.tolist(),
    })
    return out


@claim(SPEC)
def test_c6_story0_margin(cell, judge):
    kind = directions.cov_random_mixture()
    threshold = cell.config.kl_threshold
    real = cell.sweep_kind(kind, base="real")  # C1's sweeps: cached, free when C1 ran
    gaussian = cell.sweep_kind(kind, base="gaussian")
    r_real, censored_real = real.per_base_radius(threshold)
    r_gauss, censored_gauss = gaussian.per_base_radius(threshold)

    margin = real.result.clean_margin.double().numpy()  # (n,) the prompt's own clean top-1 margin
    margin_gauss = gaussian.result.clean_margin.double().numpy()  # (n,) the Gaussian base's own clean margin
    split = float(np.median(margin))
    low = margin <= split
    high = ~low
    pooled = float(np.median(np.concatenate([margin, margin_gauss])))
    both_low = (margin <= pooled) & (margin_gauss <= pooled)
    seed = cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer)

    def ratio(mask, alternative, sesoi):
        return stats.paired_log_ratio(r_real[mask], r_gauss[mask], alternative=alternative,
                                      confidence_level=SPEC.ci_level, sesoi=sesoi,
                                      censored_a=censored_real[mask], censored_b=censored_gauss[mask],
                                      documents=cell.documents[mask],
                                      n_resamples=cell.config.n_resamples, random_state=seed)

    estimate = ratio(low, SPEC.alternative, SPEC.sesoi)
    high_estimate = ratio(high, "greater", SPEC.sesoi)
    both_low_estimate = ratio(both_low, "greater", SPEC.sesoi) if both_low.sum() >= stats.MIN_PAIRS else None
    real_curve, gauss_curve = real.per_base_curve(), gaussian.per_base_curve()

    def halves(values):
        return {"low": float(np.median(values[low])), "high": float(np.median(values[high]))}

    judge(
        estimate,
        curves=[CurveSet("real_base", real.radii_rel, real_curve[low], label="real base, low margin"),
                CurveSet("real_base_high", real.radii_rel, real_curve[high], label="real base, high margin"),
                CurveSet("gaussian_base", gaussian.radii_rel, gauss_curve[low], label="gaussian base, low margin"),
                CurveSet("gaussian_base_high", gaussian.radii_rel, gauss_curve[high],
                         label="gaussian base, high margin")],
        details={
            "directions": repr(kind),
            "kl_threshold_nats": threshold,
            "margin": "clean top-1 minus top-2 logit of the base prompt (real base)",
            "margin_split_median": split,
            "n_low": int(low.sum()), "n_high": int(high.sum()),
            "median_margin": halves(margin),
            "median_margin_gaussian_arm": {  # the Gaussian base's own clean margin, by the real base's half
                **halves(margin_gauss), "all": float(np.median(margin_gauss)),
                "note": "the clean top-1 margin of the output with the Gaussian base in place"},
            "median_margin_real_arm_all": float(np.median(margin)),
            "median_radius_real": halves(r_real),
            "median_radius_gaussian": halves(r_gauss),
            "at_kl_thresholds": secondary.at_thresholds(SPEC, judge.family, {"real": real, "gaussian": gaussian},
                                                        documents=cell.documents, select=low),
            "high_margin_half": high_estimate.to_dict(),
            "interaction_low_vs_high": margin_interaction(estimate, high_estimate, alpha=SPEC.alpha),
            "both_arms_low_margin": {
                "pooled_median_margin": pooled, "n": int(both_low.sum()),
                "estimate": None if both_low_estimate is None else both_low_estimate.to_dict(),
                "note": "descriptive: pairs whose real and Gaussian margins are both at most the pooled median"},
            "censored_fraction_real": {"low": float(censored_real[low].mean()),
                                       "high": float(censored_real[high].mean())},
            "censored_fraction_gaussian": {"low": float(censored_gauss[low].mean()),
                                           "high": float(censored_gauss[high].mean())},
            "radius_unit": f"median ||resid|| at the site = {cell.stats.median_norm:.4g}",
        },
    )
