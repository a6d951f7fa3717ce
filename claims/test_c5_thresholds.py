"""C5: the threshold story: plateaus end where MLP units cross their thresholds.

H1  Inside the plateau few MLP gate/pre-activation signs flip along real-other directions,
    fewer than along covariance-matched random directions at the same radius; and the KL
    jump lines up with a burst of flips.
H0  At a fixed radius inside the plateau, the median flip ratio (real-other / cov-random)
    is at least 1.
Primary statistic: exact sign test of the median log((1 + flips_real_other) / (1 + flips_cov_random)),
    paired over base prompts. flips = sign flips summed over blocks L..N-1 (all later
    blocks' MLP units), mean over each base's K directions; the +1 keeps the log finite
    where no unit flips at all (a count of 0 is possible at small radii).
Fixed radius (chosen on KL, never on flips, and the same rule for both arms): the largest grid
    radius at which the median KL over base prompts of BOTH kinds is still below the
    threshold, i.e. the largest radius inside both median plateaus. The rule uses each
    arm's KL symmetrically, so it favours neither arm's flip count; the flips it then
    compares are not used to choose it.
Effect: median ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the CI lies below 0.9 (equivalently the sign test's p_adj <= 0.01) (a SESOI of 10%
    fewer flips: a smaller gap would not make thresholds an explanation of the plateau).
Secondary (details, its own estimate; not judged): per base, the Spearman correlation between
    the per-step increase of KL and the per-step increase of flips along the real-other
    sweep (median curves over the K directions), tested against 0 (one-sided, greater);
    and the offset, in grid steps, between the steepest KL step and the steepest flip step.
    Caveat: both curves rise with r and the grid is geometric, so a positive step correlation
    is partly expected anyway; it is evidence of alignment only next to the offset.
Real-other here is `directions.toward("real")`: unit(b - x) for another prompt's real
    activation b, swept at the same radii as every other kind (the seed's "real-other"
    direction at equal radius, not the interpolation path x + t (b - x)).
Source: the seed thread ("ReLUs require thresholds to be passed"); MCIS's ReLU-with-bias
    construction (Hänni et al. 2024).
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, inside_plateaus, readouts, stats

SPEC = ClaimSpec(
    id="C5",
    title="Threshold story: few MLP sign flips inside the plateau",
    statement="At a radius inside the plateau, fewer MLP gate/pre-activation signs flip along real-other "
              "directions than along covariance-matched random ones; the KL jump lines up with a burst of flips.",
    source="seed thread ('ReLUs require thresholds to be passed'); Hänni et al. 2024",
    null_hypothesis="median flip ratio (1 + real-other flips) / (1 + cov-random flips) >= 1 at the fixed radius",
    statistic="exact sign test of the median log (1 + flips) ratio, paired over base prompts, at the largest radius "
              "inside both median KL plateaus",
    effect="median_ratio",
    sesoi=0.9,
    alpha=0.01,
    kind="directional",
    alternative="less",
)


@claim(SPEC)
def test_c5_thresholds(cell, judge):
    threshold = cell.config.kl_threshold
    real_other = cell.sweep_kind(directions.toward("real"))
    random = cell.sweep_kind(directions.cov_random_mixture())
    # (n, K, S): flips summed over blocks L..N-1
    flips = {name: s.result.mlp_flips.sum(-1).double().numpy() for name, s in
             (("real_other", real_other), ("cov_random", random))}

    # The fixed radius, from KL only: the largest grid radius inside both median plateaus.
    index, ends, problem = inside_plateaus(real_other, random, threshold=threshold)
    radius = float(real_other.radii_rel[index])  # the schedule's radii first (a censored sweep has more after)
    a = 1.0 + flips["real_other"][:, :, index].mean(1)  # (n,)
    b = 1.0 + flips["cov_random"][:, :, index].mean(1)
    seed = cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer)
    estimate = stats.paired_log_ratio(a, b, alternative=SPEC.alternative, confidence_level=SPEC.ci_level,
                                      sesoi=SPEC.sesoi, documents=cell.documents, n_resamples=cell.config.n_resamples,
                                      random_state=seed)

    # Secondary: do KL and flips jump together along the real-other sweep? (n, S) median curves per base.
    kl_curve = real_other.per_base_curve()
    flip_curve = np.median(flips["real_other"], axis=1)
    rho = readouts.step_spearman(kl_curve, flip_curve)  # (n,), NaN where a curve has constant steps
    alignment = stats.paired_difference(rho, np.zeros_like(rho), alternative="greater",
                                        confidence_level=SPEC.ci_level, n_resamples=cell.config.n_resamples,
                                        random_state=seed)
    offset = readouts.max_slope_step(kl_curve) - readouts.max_slope_step(flip_curve)  # (n,) grid steps
    n_units = cell.model.hf_model.config.intermediate_size * (cell.model.n_layers - cell.layer)

    judge(
        estimate,
        curves=[CurveSet("real_other", real_other.radii_rel, flip_curve, label="real-other = toward('real')"),
                CurveSet("cov_random_mixture", random.radii_rel, np.median(flips["cov_random"], axis=1))],
        curve_ylabel="MLP sign flips, summed over later blocks",
        details={
            "real_other_directions": "toward('real') = unit(b - x), b another prompt's real activation, "
                                     "swept at the same radii as cov_random_mixture()",
            "random_directions": repr(directions.cov_random_mixture()),
            "kl_threshold_for_radius_choice_nats": threshold,
            "fixed_radius_rule": "largest grid radius where the median KL over bases of both kinds is below "
                                 "the threshold (chosen on KL, not flips)",
            "fixed_radius": radius,
            "plateau_end_radius": {"real_other": float(real_other.radii_rel[max(ends[0], 0)]),
                                   "cov_random": float(random.radii_rel[max(ends[1], 0)])},
            "median_flips_at_radius": {"real_other": float(np.median(a - 1)), "cov_random": float(np.median(b - 1))},
            "mlp_units_in_later_blocks": int(n_units),
            "median_flipped_fraction_at_radius": {"real_other": float(np.median(a - 1)) / n_units,
                                                  "cov_random": float(np.median(b - 1)) / n_units},
            "step_spearman_kl_vs_flips_real_other": alignment.to_dict(),
            "step_spearman_median": float(np.nanmedian(rho)),
            "steepest_step_offset_kl_minus_flips": {
                "median": float(np.median(offset)), "fraction_within_1_step": float(np.mean(np.abs(offset) <= 1))},
            "radius_unit": f"median ||resid|| at the site = {cell.stats.median_norm:.4g}",
        },
        problem=problem,
    )
