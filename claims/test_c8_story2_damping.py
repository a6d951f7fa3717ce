"""C8: Story 2, downstream damping: on-distribution perturbations shrink as they travel.

H1  A perturbation of the same size r injected along a real-other direction reaches the final
    residual stream (after the last block, before the final norm) with a smaller L2 change
    than one along a covariance-matched random direction: its amplification final_l2 / r is
    smaller, paired over base prompts.
H0  The median amplification ratio (real-other / cov-random) is at least 1.
Fixed radius, chosen in advance: the grid radius nearest 0.25 x the site's median norm (small
    enough to lie inside the plateau in the published work; whether it does here is
    reported in details, from the median KL of both kinds, and is not used to choose it).
Statistic: exact sign test of the median log(final_l2 / r) real-other minus cov-random, paired over
    base prompts (each base's value is the mean over its K directions). At one radius r
    cancels, so this is the log ratio of final-residual L2 changes.
Effect: median amplification ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the CI lies below 0.9 (equivalently the sign test's p_adj <= 0.01) (10% less damping
    would not be a story).
Figure: the propagation profile ||Δ resid after block l|| / r for l = L..N-1 at that radius,
    median and IQR over base prompts, per kind (x is the block index, not a radius).
Reported beside it (not judged): the same ratio for real_mixture directions (the corrected,
    base-free kind of Lee & Heimersheim 2024).
Real-other here is `directions.toward("real")`: unit(b - x) for another prompt's real
    activation b (the seed's "real-other" direction, at the same radius as the random one).
Source: the seed thread (Story 2; "the L2-metric plots"); Heimersheim & Mendel 2024.
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, readouts, stats

SPEC = ClaimSpec(
    id="C8",
    title="Story 2: downstream damping",
    statement="At a fixed radius inside the plateau, perturbations along real-other directions arrive at the final "
              "residual stream smaller (final_l2 / r) than perturbations along covariance-matched random directions.",
    source="seed thread (Story 2, L2-metric plots); Heimersheim & Mendel 2024",
    null_hypothesis="median amplification ratio (real-other / cov-random) at the last block >= 1",
    statistic="exact sign test of the median log final_l2 / r ratio, paired over base prompts, at r nearest 0.25 x median norm",
    effect="median_ratio",
    sesoi=0.9,
    alpha=0.01,
    kind="directional",
    alternative="less",
)
RADIUS = 0.25  # x the site's median norm, fixed in advance


@claim(SPEC)
def test_c8_story2_damping(cell, judge):
    threshold = cell.config.kl_threshold
    sweeps = {"real_other": cell.sweep_kind(directions.toward("real")),
              "cov_random_mixture": cell.sweep_kind(directions.cov_random_mixture()),
              "real_mixture": cell.sweep_kind(directions.real_mixture())}
    index = readouts.nearest_grid_index(cell.radii_rel, RADIUS)
    r_abs = float(cell.radii_abs[index])
    # (n, N - L) per-base propagation profile at that radius: mean over the K directions
    profile = {name: (s.result.resid_l2[:, :, index, :].double() / r_abs).mean(1).numpy()
               for name, s in sweeps.items()}
    final = {name: p[:, -1] for name, p in profile.items()}  # final_l2 / r (resid_l2's last entry is final_l2)
    seed = cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer)

    def ratio(a, alternative, sesoi):
        return stats.paired_log_ratio(final[a], final["cov_random_mixture"], alternative=alternative,
                                      confidence_level=SPEC.ci_level, sesoi=sesoi, documents=cell.documents,
                                      n_resamples=cell.config.n_resamples, random_state=seed)

    estimate = ratio("real_other", SPEC.alternative, SPEC.sesoi)
    corrected = ratio("real_mixture", "less", SPEC.sesoi)
    median_kl = {name: float(np.median(s.per_base_curve()[:, index])) for name, s in sweeps.items()}
    blocks = np.arange(cell.layer, cell.model.n_layers)
    labels = {"real_other": "real-other = toward('real')"}
    judge(
        estimate,
        curves=[CurveSet(name, blocks, p, label=labels.get(name)) for name, p in profile.items()],
        curve_ylabel="||Δ resid after block l|| / r", curve_xlabel="block l",
        details={
            "x_axis": "block index l (the L2 change after block l); the figure's axis label says radius",
            "real_other_directions": "toward('real') = unit(b - x), b another prompt's real activation",
            "random_directions": repr(directions.cov_random_mixture()),
            "fixed_radius_rule": f"grid radius nearest {RADIUS:g} x median norm, fixed in advance",
            "fixed_radius": float(cell.radii_rel[index]),
            "fixed_radius_abs": r_abs,
            "median_kl_at_radius_nats": median_kl,
            "inside_plateau": bool(median_kl["real_other"] < threshold and median_kl["cov_random_mixture"] < threshold),
            "plateau_kl_threshold_nats_for_inside_check": threshold,
            "median_amplification_final": {name: float(np.median(f)) for name, f in final.items()},
            "median_profile": {name: np.median(p, axis=0).round(4).tolist() for name, p in profile.items()},
            "real_mixture_vs_cov_random": corrected.to_dict(),
            "radius_unit": f"median ||resid|| at the site = {cell.stats.median_norm:.4g}",
        },
    )
