"""C2: sensitive directions exceed random ones.

H1  Directions between real activations (real_mixture) push KL past the threshold at a
    smaller radius than covariance-matched random directions (cov_random_mixture), paired
    over base prompts; and (reported beside it) much smaller than isotropic ones.
H0  The median radius ratio (real_mixture / cov_random_mixture) is at least 1.
Statistic: exact sign test of the median log(radius ratio), paired over base prompts; each base's
    radius is the median over its directions of each kind.
Effect: median radius ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the CI lies below 0.9 (equivalently the sign test's p_adj <= 0.01).
Source: the seed thread ("sensitive directions"); Heimersheim & Mendel 2024. Lee &
    Heimersheim 2024 report only a small real vs cov-random gap: this claim may fail.
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


@claim(SPEC)
def test_c2_sensitive_directions(cell, judge):
    threshold = cell.config.kl_threshold
    sweeps = {kind.name: cell.sweep_kind(kind) for kind in
              (directions.real_mixture(), directions.cov_random_mixture(), directions.isotropic())}
    radius = {name: s.per_base_radius(threshold) for name, s in sweeps.items()}
    r_real, r_cov, r_iso = (radius[k][0] for k in ("real_mixture", "cov_random_mixture", "isotropic"))
    seed = cell.config.cell_seed("C2", cell.model_name, cell.layer)

    censored = {name: c for name, (_, c) in radius.items()}
    estimate = stats.paired_log_ratio(r_real, r_cov, alternative=SPEC.alternative,
                                      confidence_level=SPEC.ci_level, sesoi=SPEC.sesoi,
                                      censored_a=censored["real_mixture"], censored_b=censored["cov_random_mixture"],
                                      documents=cell.documents, n_resamples=cell.config.n_resamples,
                                      random_state=seed)
    versus_isotropic = stats.paired_log_ratio(r_real, r_iso, alternative="less", confidence_level=SPEC.ci_level,
                                              censored_a=censored["real_mixture"], censored_b=censored["isotropic"],
                                              documents=cell.documents, n_resamples=cell.config.n_resamples,
                                              random_state=seed)
    judge(
        estimate,
        curves=[CurveSet(name, s.radii_rel, s.per_base_curve()) for name, s in sweeps.items()],
        details={
            "kl_threshold_nats": threshold,
            "median_radius": {name: float(np.median(r)) for name, (r, _) in radius.items()},
            "censored_fraction": {name: float(c.mean()) for name, (_, c) in radius.items()},
            "real_mixture_vs_isotropic": versus_isotropic.to_dict(),
            "radius_unit": f"median ||resid|| at the site = {cell.stats.median_norm:.4g}",
            "at_kl_thresholds": secondary.at_thresholds(
                SPEC, judge.family, {"real_mixture": sweeps["real_mixture"],
                                     "cov_random_mixture": sweeps["cov_random_mixture"]}, documents=cell.documents),
        },
    )
