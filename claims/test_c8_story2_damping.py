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

from mcis_claims import ClaimSpec, CurveSet, claim, directions, inside_plateaus, response

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
    # (n, N - L) per base: ||Δh_l - r u|| / r after each block at that radius; the last column is the final one
    profile = {name: response.profile_per_radius(s, index, r_abs) for name, s in arms.items()}
    estimate = cell.paired_ratio(SPEC, profile["real_base"][:, -1], profile["gaussian_base"][:, -1])

    # labelled secondary: the first-wave direction form, raw ||Δh_final|| / r on real bases at the same radius
    directional = {"real_other": cell.sweep_kind(directions.toward("real")), "cov_random_mixture": arms["real_base"],
                   "real_mixture": cell.sweep_kind(directions.real_mixture())}
    blocks = np.arange(cell.layer, cell.model.n_layers)
    judge(
        estimate,
        curves=[CurveSet(name, blocks, p, label=name.replace("_", " ")) for name, p in profile.items()],
        curve_ylabel="blocks' response ||Δh_l - r u|| / r", curve_xlabel="block l",
        details=response.damping_details(cell, SPEC, kind, arms, directional, profile, index=index, ends=ends,
                                         radius_rel=r_rel, radius_abs=r_abs),
        problem=problem,
    )
