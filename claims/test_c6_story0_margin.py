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
Reported beside it (not judged): the same estimate for the high-margin half.
Source: the seed thread ("Story 0 ... I don't think the KL divergence would behave like that").
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, stats

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
    r_real, censored_real = real.per_base_radius(threshold)
    r_gauss, censored_gauss = gaussian.per_base_radius(threshold)

    margin = real.result.clean_margin.double().numpy()  # (n,) the prompt's own clean top-1 margin
    split = float(np.median(margin))
    low = margin <= split
    high = ~low
    seed = cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer)

    def ratio(mask, alternative, sesoi):
        return stats.paired_log_ratio(r_real[mask], r_gauss[mask], alternative=alternative,
                                      confidence_level=SPEC.ci_level, sesoi=sesoi,
                                      censored_a=censored_real[mask], censored_b=censored_gauss[mask],
                                      documents=cell.documents[mask],
                                      n_resamples=cell.config.n_resamples, random_state=seed)

    estimate = ratio(low, SPEC.alternative, SPEC.sesoi)
    high_estimate = ratio(high, "greater", SPEC.sesoi)
    real_curve, gauss_curve = real.per_base_curve(), gaussian.per_base_curve()
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
            "median_margin": {"low": float(np.median(margin[low])), "high": float(np.median(margin[high]))},
            "median_radius_real": {"low": float(np.median(r_real[low])), "high": float(np.median(r_real[high]))},
            "median_radius_gaussian": {"low": float(np.median(r_gauss[low])),
                                       "high": float(np.median(r_gauss[high]))},
            "high_margin_half": high_estimate.to_dict(),
            "censored_fraction_real": {"low": float(censored_real[low].mean()),
                                       "high": float(censored_real[high].mean())},
            "censored_fraction_gaussian": {"low": float(censored_gauss[low].mean()),
                                           "high": float(censored_gauss[high].mean())},
            "radius_unit": f"median ||resid|| at the site = {cell.stats.median_norm:.4g}",
        },
    )
