"""C2: sensitive directions exceed random ones (and C2b: covariance-matched random ones exceed isotropic).

C2
H1  Directions between real activations (real_mixture) push KL past the threshold at a
    smaller radius than covariance-matched random directions (cov_random_mixture), paired
    over base prompts.
H0  The median radius ratio (real_mixture / cov_random_mixture) is at least 1.
Statistic: exact sign test of the median log(radius ratio), paired over base prompts; each base's
    radius is the median over its directions of each kind.
Effect: median radius ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the CI lies below 0.9 (equivalently the sign test's p_adj <= 0.01).
Source: the seed thread ("sensitive directions"); Heimersheim & Mendel 2024. Lee &
    Heimersheim 2024 report only a small real vs cov-random gap: this claim may fail.

C2b (claims.md: "much smaller than isotropic ones", isotropic vs cov-random judged as its own cell)
H1  Covariance-matched random directions (cov_random_mixture) are more sensitive than
    isotropic ones: from the same real base, KL passes the threshold at a larger radius along
    isotropic directions than along cov-random ones.
H0  The median radius ratio (isotropic / cov_random_mixture) is at most 1.
Statistic, effect and interval as C2, on log(isotropic radius / cov-random radius).
Supported if the CI lies above 1.1: C1's SESOI, the smallest radius gap this project counts
    (a 10 % longer plateau). The direction is the one the seed's "much smaller than isotropic"
    implies through the covariance: the activations' variance lies in few directions the
    model reads strongly (C9 reports the read-offs), so directions drawn with that
    covariance should reach the threshold sooner than uniformly spread ones. A ratio below 1
    (isotropic more sensitive) is reversed; within (1, 1.1) negligible. real_mixture vs
    isotropic is reported beside it (descriptive), the form the seed states.
Source: the seed thread; Lee & Heimersheim 2024 (the corrected random baselines).

Both cells use the same three cached sweeps (cell.sweep_kind), so C2b costs no extra forward pass.
Censoring as C1: a curve that never crosses by 16 x the median norm is a lower bound, placed
against the claim; bases come from distinct documents (cell.documents).
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, secondary, stats

SPEC = ClaimSpec(
    id="C2",
    title="Sensitive directions exceed random",
    statement="Real-mixture directions change the output (KL past the threshold) at a smaller radius "
              "than covariance-matched random directions, on the same real bases.",
    source="seed thread; Heimersheim & Mendel 2024; Lee & Heimersheim 2024",
    null_hypothesis="median radius ratio (real_mixture / cov_random_mixture) >= 1",
    statistic="exact sign test of the median log radius-to-threshold ratio, paired over base prompts",
    effect="median_ratio",
    sesoi=0.9,
    alpha=0.01,
    kind="directional",
    alternative="less",
)

SPEC_ISOTROPIC = ClaimSpec(
    id="C2b",
    title="Cov-random directions exceed isotropic",
    statement="Covariance-matched random directions change the output (KL past the threshold) at a smaller "
              "radius than isotropic directions, on the same real bases: isotropic / cov-random radius > 1.1.",
    source="seed thread; Lee & Heimersheim 2024",
    null_hypothesis="median radius ratio (isotropic / cov_random_mixture) <= 1",
    statistic="exact sign test of the median log radius-to-threshold ratio, paired over base prompts",
    effect="median_ratio",
    sesoi=1.1,
    alpha=0.01,
    kind="directional",
    alternative="greater",
)

KINDS = (directions.real_mixture(), directions.cov_random_mixture(), directions.isotropic())


def kind_sweeps(cell) -> dict:
    """{kind name: KindSweep} of the three kinds on real bases, cached for the run (C2, C2b, C4c share them)."""
    return {kind.name: cell.sweep_kind(kind) for kind in KINDS}


def radius_ratio(cell, spec, sweeps, a, b, *, judged=True):
    """The paired median radius ratio a / b over base prompts, censored radii as bounds.

    judged=False: the same estimate tested against no effect (ratio 1) instead of the SESOI (descriptive)."""
    threshold = cell.config.kl_threshold
    (r_a, c_a), (r_b, c_b) = sweeps[a].per_base_radius(threshold), sweeps[b].per_base_radius(threshold)
    return stats.paired_log_ratio(
        r_a, r_b, alternative=spec.alternative, confidence_level=spec.ci_level,
        sesoi=spec.sesoi if judged else None, censored_a=c_a, censored_b=c_b, documents=cell.documents,
        n_resamples=cell.config.n_resamples, random_state=cell.config.cell_seed(spec.id, cell.model_name, cell.layer))


def common_details(cell, sweeps) -> dict:
    threshold = cell.config.kl_threshold
    radius = {name: s.per_base_radius(threshold) for name, s in sweeps.items()}
    return {
        "kl_threshold_nats": threshold,
        "median_radius": {name: float(np.median(r)) for name, (r, _) in radius.items()},
        "censored_fraction": {name: float(c.mean()) for name, (_, c) in radius.items()},
        "radius_unit": cell.radius_unit,
    }


@claim(SPEC)
def test_c2_sensitive_directions(cell, judge):
    sweeps = kind_sweeps(cell)
    estimate = radius_ratio(cell, SPEC, sweeps, "real_mixture", "cov_random_mixture")
    versus_isotropic = radius_ratio(cell, SPEC, sweeps, "real_mixture", "isotropic", judged=False)
    judge(
        estimate,
        curves=[CurveSet(name, s.radii_rel, s.per_base_curve()) for name, s in sweeps.items()],
        details={
            **common_details(cell, sweeps),
            "real_mixture_vs_isotropic": versus_isotropic.to_dict(),
            "at_kl_thresholds": secondary.at_thresholds(
                SPEC, judge.family, {"real_mixture": sweeps["real_mixture"],
                                     "cov_random_mixture": sweeps["cov_random_mixture"]}, documents=cell.documents),
        },
    )


@claim(SPEC_ISOTROPIC)
def test_c2b_cov_random_vs_isotropic(cell, judge):
    sweeps = kind_sweeps(cell)
    estimate = radius_ratio(cell, SPEC_ISOTROPIC, sweeps, "isotropic", "cov_random_mixture")
    real_vs_isotropic = radius_ratio(cell, SPEC_ISOTROPIC, sweeps, "isotropic", "real_mixture", judged=False)
    judge(
        estimate,
        curves=[CurveSet(name, s.radii_rel, s.per_base_curve()) for name, s in sweeps.items()],
        details={
            **common_details(cell, sweeps),
            "isotropic_vs_real_mixture": real_vs_isotropic.to_dict(),  # the seed's "much smaller" form, descriptive
            "at_kl_thresholds": secondary.at_thresholds(
                SPEC_ISOTROPIC, judge.family, {"isotropic": sweeps["isotropic"],
                                               "cov_random_mixture": sweeps["cov_random_mixture"]},
                documents=cell.documents),
        },
    )
