"""The base prompts split by their clean top-1 margin, and the plateau read within each half (claim C6).

Story 0 says the plateau comes from a large clean margin: if so it would live in the
high-margin prompts only. The split uses the clean margins alone, never the radii, so it is
fixed before anything the claim judges is looked at. Within a half the comparison is C1's
(real vs Gaussian base, paired per prompt); across halves it is unpaired, so descriptive only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from . import stats
from .records import CurveSet


@dataclass(frozen=True)
class MarginSplit:
    """Which base prompts have a low clean margin: (n,) masks over the bases, from the margins only."""

    margin: np.ndarray  # (n,) the prompt's own clean top-1 minus top-2 logit (real base)
    margin_gaussian: np.ndarray  # (n,) the clean margin of the output with the Gaussian base in place
    split: float  # the median real margin: low is at most this
    low: np.ndarray  # (n,) bool
    pooled: float  # the median margin over both arms together
    both_low: np.ndarray  # (n,) bool: both arms' margins at most `pooled`

    @property
    def high(self) -> np.ndarray:
        return ~self.low


def split_by_margin(real, gaussian) -> MarginSplit:
    """Halves at the median clean margin of the real bases, and the pairs whose two arms are both low.

    real, gaussian: KindSweeps over the same bases, the Gaussian one with the Gaussian base in place
    (its row 0 gives that base's own clean margin: Gaussian bases could have lower margins).
    """
    margin = real.result.clean_margin.double().numpy()
    margin_gaussian = gaussian.result.clean_margin.double().numpy()
    split = float(np.median(margin))
    pooled = float(np.median(np.concatenate([margin, margin_gaussian])))
    return MarginSplit(margin=margin, margin_gaussian=margin_gaussian, split=split, low=margin <= split,
                       pooled=pooled, both_low=(margin <= pooled) & (margin_gaussian <= pooled))


def paired_ratio_within(cell, spec, mask, a, b, *, alternative: str | None = None):
    """`spec`'s median ratio a / b over the bases in `mask` only (their documents, this cell's seed).

    a, b: (radius (n,), censored (n,)) as `KindSweep.per_base_radius` returns them. `alternative`
    defaults to the spec's; the SESOI and level are always the spec's.
    """
    (r_a, censored_a), (r_b, censored_b) = a, b
    return stats.paired_log_ratio(r_a[mask], r_b[mask], alternative=alternative or spec.alternative,
                                  confidence_level=spec.ci_level, sesoi=spec.sesoi,
                                  censored_a=censored_a[mask], censored_b=censored_b[mask],
                                  documents=cell.documents[mask], n_resamples=cell.config.n_resamples,
                                  random_state=cell.config.cell_seed(spec.id, cell.model_name, cell.layer))


def curves_by_half(real, gaussian, halves: MarginSplit) -> list[CurveSet]:
    """Each arm's per-base KL curves, low and high margin apart, for the figure."""
    real_curve, gauss_curve = real.per_base_curve(), gaussian.per_base_curve()  # (n, S)
    low, high = halves.low, halves.high
    return [CurveSet("real_base", real.radii_rel, real_curve[low], label="real base, low margin"),
            CurveSet("real_base_high", real.radii_rel, real_curve[high], label="real base, high margin"),
            CurveSet("gaussian_base", gaussian.radii_rel, gauss_curve[low], label="gaussian base, low margin"),
            CurveSet("gaussian_base_high", gaussian.radii_rel, gauss_curve[high], label="gaussian base, high margin")]


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


def story0_details(halves: MarginSplit, radius_real, radius_gauss, *, estimate, high, both_low, alpha: float,
                   at_kl_thresholds: dict) -> dict:
    """C6's record between its header keys and the radius unit: margins, radii and censoring by half,
    the secondary thresholds (on the low half), and the estimates reported beside the judged one.

    radius_*: (radius (n,), censored (n,)); high, both_low: the high half's and the both-arms-low
    pairs' estimates (both_low None when too few pairs).
    """
    (r_real, censored_real), (r_gauss, censored_gauss) = radius_real, radius_gauss
    low_, high_ = halves.low, halves.high

    def by_half(values):
        return {"low": float(np.median(values[low_])), "high": float(np.median(values[high_]))}

    return {
        "margin": "clean top-1 minus top-2 logit of the base prompt (real base)",
        "margin_split_median": halves.split,
        "n_low": int(low_.sum()), "n_high": int(high_.sum()),
        "median_margin": by_half(halves.margin),
        "median_margin_gaussian_arm": {  # the Gaussian base's own clean margin, by the real base's half
            **by_half(halves.margin_gaussian), "all": float(np.median(halves.margin_gaussian)),
            "note": "the clean top-1 margin of the output with the Gaussian base in place"},
        "median_margin_real_arm_all": float(np.median(halves.margin)),
        "median_radius_real": by_half(r_real),
        "median_radius_gaussian": by_half(r_gauss),
        "at_kl_thresholds": at_kl_thresholds,
        "high_margin_half": high.to_dict(),
        "interaction_low_vs_high": margin_interaction(estimate, high, alpha=alpha),
        "both_arms_low_margin": {
            "pooled_median_margin": halves.pooled, "n": int(halves.both_low.sum()),
            "estimate": None if both_low is None else both_low.to_dict(),
            "note": "descriptive: pairs whose real and Gaussian margins are both at most the pooled median"},
        "censored_fraction_real": {"low": float(censored_real[low_].mean()),
                                   "high": float(censored_real[high_].mean())},
        "censored_fraction_gaussian": {"low": float(censored_gauss[low_].mean()),
                                       "high": float(censored_gauss[high_].mean())},
    }
