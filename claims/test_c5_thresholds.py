"""C5: the threshold story: plateaus end where MLP units cross their thresholds.

A causal test (claims.md, C5): make every later block's MLP linear in the perturbation by
freezing its nonlinearity at the base's own values (SwiGLU/GeGLU: the gate activation
act(gate(x_base)); GPT-2's GELU: its tangent at the base's pre-activation), and see what is
left of the plateau. If the plateau exists because perturbations must first push MLP units
across their thresholds, the frozen model has no thresholds to cross, so its output changes
at a much smaller radius; and the real-vs-Gaussian base gap (C1) shrinks.

C5 (primary)
H1  Along covariance-matched random directions on real bases, KL(clean || perturbed) first
    exceeds the threshold (--kl-threshold, default 0.1 nats) at a much smaller radius when the
    MLPs are frozen than when they are live: median radius ratio frozen / live below 0.8.
H0  The median radius ratio (frozen / live) is at least 1.
Statistic: exact sign test of the median log radius ratio against log 0.8, paired over base
    prompts (the same directions, bases and radii in both arms; each base's radius the median
    over its K directions). Curves that never cross (after the schedule is extended to 16 x the
    median norm) are right-censored and placed against the claim, as in C1.
Effect: median radius ratio, order-statistic interval at 1 - 2 alpha / M (M: the family).
SESOI 0.8: "much smaller when frozen" means at least 20 % less radius at the median; a smaller
    shift would leave most of the plateau standing without the thresholds, which is what the
    story denies. Supported if the interval lies below 0.8; negligible if it lies wholly above.

C5b (the base gap)
H1  The real-vs-Gaussian base gap of C1 is smaller with the MLPs frozen (each base frozen at its
    own values: the Gaussian base at the Gaussian draw's): per base prompt,
    d = log(r_real_frozen / r_gauss_frozen) - log(r_real_live / r_gauss_live) < log 0.9.
H0  The median of d is at least 0 (the gap is not smaller when frozen).
Statistic: exact sign test of the median d against log 0.9, paired over base prompts; a censored
    radius leaves d unbounded on its side (real-frozen and Gaussian-live censored: d only a lower
    bound; Gaussian-frozen and real-live: only an upper bound), placed against the claim.
Effect: median ratio of ratios exp(d), interval as C5. SESOI 0.9: the gap shrinks by at least
    10 % of itself on the ratio scale (C1's own SESOI is a 10 % gap).

Secondary (details only, never judged):
- "secondary, old form": the former C5 statistic, MLP sign flips at the largest radius inside
    both median plateaus, real-other (toward('real')) over cov-random, as a median (1 + flips)
    ratio with its sign test.
- flips on real vs Gaussian bases along the same cov-random directions at matched KL: the MLP
    sign flips (summed over later blocks) at each curve's first grid radius past the threshold.
- KL-jump vs flip-burst alignment on the live real-base sweep, against a circular-shift null:
    per base, the Spearman correlation of the per-step KL and flip increments (median curves over
    the K directions, the schedule's radii) is compared with the same correlation after the flip
    increments are shifted circularly by 1..S-2 steps (which keeps their values, not their place).
- C1's radius read-outs at 0.01, 0.1 and 1 nats for frozen vs live (secondary.at_thresholds).
Note: SwiGLU's SiLU gate is not a hard threshold, so freezing it removes more than thresholds;
    a GELU/ReLU model (GPT-2) is the cleaner test (claims.md).
Source: the seed thread ("ReLUs require thresholds to be passed"); MCIS's ReLU-with-bias
    construction (Hänni et al. 2024); Shinkle 2025.
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, flips, secondary

SPEC = ClaimSpec(
    id="C5",
    title="Threshold story: freezing the MLPs shrinks the plateau",
    statement="With every later MLP's nonlinearity frozen at the base's own values (each MLP linear in the "
              "perturbation), KL passes the threshold at a much smaller radius than with live MLPs, "
              "along the same cov-random directions on real bases.",
    source="seed thread ('ReLUs require thresholds to be passed'); Hänni et al. 2024; Shinkle 2025",
    null_hypothesis="median radius ratio (frozen / live MLPs) >= 1",
    statistic="exact sign test of the median log radius-to-threshold ratio frozen / live, paired over base prompts",
    effect="median_ratio",
    sesoi=0.8,
    alpha=0.01,
    kind="directional",
    alternative="less",
)

SPEC_GAP = ClaimSpec(
    id="C5b",
    title="Threshold story: freezing the MLPs shrinks the real-vs-Gaussian gap",
    statement="C1's real-vs-Gaussian base gap (radius ratio real / Gaussian) is smaller with the later MLPs "
              "frozen at each base's own values than with live MLPs.",
    source="seed thread ('ReLUs require thresholds to be passed'); Hänni et al. 2024",
    null_hypothesis="median ratio of ratios (real/Gaussian frozen) / (real/Gaussian live) >= 1",
    statistic="exact sign test of the median of log(r_real_frozen / r_gauss_frozen) - log(r_real_live / r_gauss_live), "
              "paired over base prompts",
    effect="median_ratio",
    sesoi=0.9,
    alpha=0.01,
    kind="directional",
    alternative="less",
)

KIND = directions.cov_random_mixture()
FROZEN_MLP = ("each later block's MLP nonlinearity frozen at the base's own values: gated MLPs keep "
              "act(gate(x_base)); GPT-2's GELU is replaced by its tangent at the base's pre-activation")


def radii(cell, base, freeze_mlp):
    """(sweep, per-base radius, censored) for one arm."""
    s = cell.sweep_kind(KIND, base=base, freeze_mlp=freeze_mlp)
    return (s, *s.per_base_radius(cell.config.kl_threshold))


@claim(SPEC)
def test_c5_thresholds(cell, judge):
    threshold = cell.config.kl_threshold
    live, r_live, c_live = radii(cell, "real", False)  # (n,) radius to the threshold; c_: censored (lower bound)
    frozen, r_frozen, c_frozen = radii(cell, "real", True)
    estimate = cell.paired_ratio(SPEC, r_frozen, r_live, censored_a=c_frozen, censored_b=c_live)
    gaussian = cell.sweep_kind(KIND, base="gaussian")  # for the flips at matched KL
    seed = cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer)  # the secondaries' bootstrap: the estimate's
    judge(
        estimate,
        curves=[CurveSet("live MLPs", live.radii_rel, live.per_base_curve()),
                CurveSet("frozen MLPs", frozen.radii_rel, frozen.per_base_curve())],
        details={
            "directions": repr(KIND), "kl_threshold_nats": threshold, "frozen_mlp": FROZEN_MLP,
            "median_radius_frozen": float(np.median(r_frozen)), "median_radius_live": float(np.median(r_live)),
            "censored_fraction_frozen": float(c_frozen.mean()), "censored_fraction_live": float(c_live.mean()),
            "radius_unit": cell.radius_unit,
            "at_kl_thresholds": secondary.at_thresholds(SPEC, judge.family, {"frozen": frozen, "live": live},
                                                        documents=cell.documents),
            "secondary, old form: flip ratio real-other / cov-random inside the plateau": flips.old_flip_ratio(
                cell, KIND, seed),
            "secondary: flips at matched KL, real vs Gaussian bases": flips.flips_at_matched_kl(
                live, gaussian, threshold, cell, seed),
            "secondary: KL-jump vs flip-burst alignment (circular-shift null)": flips.alignment(live, cell, seed),
        },
    )


@claim(SPEC_GAP)
def test_c5b_gap_frozen_vs_live(cell, judge):
    arms = {(base, frozen): radii(cell, base, frozen) for base in ("real", "gaussian") for frozen in (False, True)}
    (_, r_rl, c_rl), (_, r_rf, c_rf) = arms["real", False], arms["real", True]
    (_, r_gl, c_gl), (_, r_gf, c_gf) = arms["gaussian", False], arms["gaussian", True]
    # d = log(A) - log(B), A = r_rf / r_gf, B = r_rl / r_gl. paired_ratio's censored_a leaves d's upper
    # end open, censored_b its lower end: a censored radius (a lower bound) in a numerator of d (r_rf, r_gl)
    # opens the upper end, one in a denominator (r_gf, r_rl) the lower end.
    estimate = cell.paired_ratio(SPEC_GAP, r_rf / r_gf, r_rl / r_gl, censored_a=c_rf | c_gl, censored_b=c_gf | c_rl)
    names = {("real", False): "real_live", ("real", True): "real_frozen", ("gaussian", False): "gaussian_live",
             ("gaussian", True): "gaussian_frozen"}
    judge(
        estimate,
        curves=[CurveSet(names[key], s.radii_rel, s.per_base_curve()) for key, (s, _, _) in arms.items()],
        details={
            "directions": repr(KIND),
            "kl_threshold_nats": cell.config.kl_threshold,
            "median_radius": {names[key]: float(np.median(r)) for key, (_, r, _) in arms.items()},
            "censored_fraction": {names[key]: float(c.mean()) for key, (_, _, c) in arms.items()},
            "median_gap_real_over_gaussian": {"live": float(np.median(r_rl / r_gl)),
                                              "frozen": float(np.median(r_rf / r_gf))},
            "radius_unit": cell.radius_unit,
        },
    )
