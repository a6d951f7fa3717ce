"""C8: Story 2, downstream damping: on-distribution perturbations shrink as they travel.

The seed: "perturbations in a lower layer cause less perturbation in later layers if the model
is on-distribution". The story is about on-distribution *bases* (changed after the first
results, claims.md; the real-other direction form stays as a labelled secondary), and about
what the blocks do with a perturbation: the skip path carries r u unchanged to every later
layer, so the read-out is the blocks' response ||Δh_l - r u|| (not ||Δh_l||, about r for any base).
H1  At a radius inside both plateaus, along the same cov-random directions, the blocks'
    response per unit radius at the final residual stream (after the last block, before the
    final norm) is smaller from a real base than from its Gaussian N(mu, Sigma) base.
H0  The median ratio (real / Gaussian base) of ||Δh_final - r u|| / r is at least 1.
Radius, by rule before looking at the response: the largest grid radius at which the median KL
    over bases is below --kl-threshold for both arms (inside both plateaus). At one radius r
    cancels in the ratio. Each base's value is the mean over its K directions.
Statistic: exact sign test of the median log ratio, paired over base prompts (C1's sweeps).
Effect: median damping ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the interval lies below 0.9 (equivalently the sign test's p_adj <= 0.01) (10% less
    response would not be a story).
Figure: the profile ||Δh_l - r u|| / r for l = L..N-1 at that radius, per arm (x is the block index).
Reported beside it (not judged): the old direction form (real-other = toward('real') vs
    cov-random on real bases, raw ||Δh_final|| / r), labelled, and real_mixture vs cov-random.
Source: the seed thread (Story 2; "the L2-metric plots"); Heimersheim & Mendel 2024.
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, inside_plateaus, stats

SPEC = ClaimSpec(
    id="C8",
    title="Story 2: downstream damping",
    statement="At a radius inside both plateaus, the blocks' response to a perturbation (||Δh_final - r u|| / r, "
              "before the final norm) is smaller from real bases than from Gaussian bases, along the same directions.",
    source="seed thread (Story 2, L2-metric plots); Heimersheim & Mendel 2024",
    null_hypothesis="median ratio (real / Gaussian base) of the final blocks' response per radius >= 1",
    statistic="exact sign test of the median log ratio of ||Δh_final - r u|| / r, real vs Gaussian base, paired over "
              "base prompts, at the largest grid radius inside both median plateaus",
    effect="median_ratio",
    sesoi=0.9,
    alpha=0.01,
    kind="directional",
    alternative="less",
)


@claim(SPEC)
def test_c8_story2_damping(cell, judge):
    threshold = cell.config.kl_threshold
    kind = directions.cov_random_mixture()
    arms = {"real_base": cell.sweep_kind(kind), "gaussian_base": cell.sweep_kind(kind, base="gaussian")}
    index, ends, problem = inside_plateaus(*arms.values(), threshold=threshold)
    r_rel = float(arms["real_base"].radii_rel[index])  # may lie past the schedule where a sweep was extended
    r_abs = r_rel * cell.stats.median_norm
    # (n, N - L) per-base profile at that radius: mean over the K directions
    profile = {name: (s.result.response_l2[:, :, index, :].double() / r_abs).mean(1).numpy()
               for name, s in arms.items()}
    final = {name: p[:, -1] for name, p in profile.items()}
    seed = cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer)
    estimate = stats.paired_log_ratio(final["real_base"], final["gaussian_base"], alternative=SPEC.alternative,
                                      confidence_level=SPEC.ci_level, sesoi=SPEC.sesoi, documents=cell.documents,
                                      n_resamples=cell.config.n_resamples, random_state=seed)

    # labelled secondary: the first-wave direction form, raw ||Δh_final|| / r on real bases at the same radius
    directional = {"real_other": cell.sweep_kind(directions.toward("real")), "cov_random_mixture": arms["real_base"],
                   "real_mixture": cell.sweep_kind(directions.real_mixture())}
    raw_final = {name: (s.result.final_l2[:, :, index].double() / r_abs).mean(1).numpy()
                 for name, s in directional.items()}
    old_form = {name: stats.paired_log_ratio(raw_final[name], raw_final["cov_random_mixture"], alternative="less",
                                             confidence_level=SPEC.ci_level, sesoi=SPEC.sesoi,
                                             n_resamples=cell.config.n_resamples, random_state=seed).to_dict()
                for name in ("real_other", "real_mixture")}
    median_kl = {name: float(np.median(s.per_base_curve()[:, index])) for name, s in arms.items()}
    blocks = np.arange(cell.layer, cell.model.n_layers)
    judge(
        estimate,
        curves=[CurveSet(name, blocks, p, label=name.replace("_", " ")) for name, p in profile.items()],
        curve_ylabel="blocks' response ||Δh_l - r u|| / r", curve_xlabel="block l",
        details={
            "readout": "the blocks' response ||Δh_l - r u|| / r after block l (skip term removed); primary at the last block",
            "directions": repr(kind),
            "radius_rule": "largest grid radius where the median KL over bases of both arms is below the threshold",
            "radius_rel": r_rel, "radius_abs": r_abs,
            "plateau_end_radius": {name: float(s.radii_rel[max(e, 0)]) for (name, s), e in zip(arms.items(), ends)},
            "median_kl_at_radius_nats": median_kl,
            "median_response_final": {name: float(np.median(f)) for name, f in final.items()},
            "median_profile": {name: np.median(p, axis=0).round(4).tolist() for name, p in profile.items()},
            "direction_form_raw_final_l2": {
                "note": "labelled secondary (the first-wave form): directions on real bases, raw ||Δh_final|| / r, "
                        "which carries the skip term",
                **old_form},
            "radius_unit": f"median ||resid|| at the site = {cell.stats.median_norm:.4g}",
        },
        problem=problem,
    )
