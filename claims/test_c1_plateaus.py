"""C1: plateaus near real activations.

H1  Real activations resist small perturbations more than off-distribution ones: along
    the same covariance-matched random directions, KL(clean || perturbed) first exceeds
    the threshold (default 0.1 nats) at a larger radius from a real base than from a
    Gaussian base drawn from N(mu, Sigma) fitted at the site.
H0  The median radius ratio (real / Gaussian) is at most 1.
Statistic: exact sign test of the median log radius ratio against log 1.1, paired over base
    prompts (each base prompt supplies the context, the real activation and its own Gaussian
    draw). A curve that never reaches the threshold (after the schedule is extended to 16 x
    the median norm) is a right-censored radius, placed against the claim.
Effect: median radius ratio, order-statistic interval at 1 - 2 alpha / M (M: the family).
Supported if the interval lies above 1.1 (equivalently sign-test p_adj <= 0.01); negligible if
    it lies below 1.1; reversed if below 1.
Secondary arms (details, descriptive; not judged): another prompt's real activation placed as the
    base in this prompt's context ("on-distribution but not this context"), against both arms;
    radii relative to each base's own norm (r / ||base||) instead of the site's median norm; the
    entropy of the clean output at each arm's base. They separate "real" from "this context's" and
    from "a smaller or larger norm", the two readings a real-vs-Gaussian gap leaves open.
Source: the seed thread ("activation plateaus"); Heimersheim & Mendel 2024; Giglemiani et al. 2024.
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, secondary

SPEC = ClaimSpec(
    id="C1",
    title="Plateaus near real activations",
    statement="Real activations need a larger perturbation than Gaussian N(mu, Sigma) activations "
              "before the output changes (KL past the threshold), along the same directions.",
    source="seed thread; Heimersheim & Mendel 2024; Giglemiani et al. 2024",
    null_hypothesis="median radius ratio (real / Gaussian base) <= 1",
    statistic="exact sign test of the median log radius-to-threshold ratio, paired over base prompts",
    effect="median_ratio",
    sesoi=1.1,
    alpha=0.01,
    kind="directional",
    alternative="greater",
)


@claim(SPEC)
def test_c1_plateaus(cell, judge):
    kind = directions.cov_random_mixture()
    threshold = cell.config.kl_threshold
    real = cell.sweep_kind(kind, base="real")  # KL curves (n bases, K directions, S radii)
    gaussian = cell.sweep_kind(kind, base="gaussian")
    other = cell.sweep_kind(kind, base="other_real")  # the secondary arm's base
    r_real, c_real = real.per_base_radius(threshold)  # (n,) radius to the threshold; c_: censored (lower bound)
    r_gauss, c_gauss = gaussian.per_base_radius(threshold)

    estimate = cell.paired_ratio(SPEC, r_real, r_gauss, censored_a=c_real, censored_b=c_gauss)
    judge(
        estimate,
        curves=[CurveSet("real base", real.radii_rel, real.per_base_curve()),
                CurveSet("gaussian base", gaussian.radii_rel, gaussian.per_base_curve()),
                CurveSet("another prompt's real activation", other.radii_rel, other.per_base_curve())],
        details={
            "directions": repr(kind), "kl_threshold_nats": threshold,
            "median_radius_real": float(np.median(r_real)), "median_radius_gaussian": float(np.median(r_gauss)),
            "censored_fraction_real": float(c_real.mean()), "censored_fraction_gaussian": float(c_gauss.mean()),
            "radius_unit": cell.radius_unit,
            "at_kl_thresholds": secondary.at_thresholds(SPEC, judge.family, {"real": real, "gaussian": gaussian},
                                                        documents=cell.documents),
            "secondary_arms": secondary.base_arms(SPEC, cell, {"real": real, "gaussian": gaussian,
                                                               "other_real": other}),
        },
    )
