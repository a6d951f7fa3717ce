"""C3: local optima in sensitivity.

H1  Gradient ascent from random starts finds directions far more sensitive than random
    ones: along the optimized directions KL(clean || perturbed) first exceeds the threshold
    (default 0.1 nats) at less than half the radius that covariance-matched random
    directions (cov_random_mixture) need, paired over base prompts. Reported beside it, not
    judged: restarts land in distinct optima (low pairwise |cos|) of comparable
    sensitivity (max/min KL over restarts near 1).
H0  The median radius ratio (optimized / cov_random_mixture) is at least 1.
Statistic: exact sign test of the median log(radius ratio), paired over base prompts; each base's
    radius is the median over its R optima (optimized) or its K directions (cov-random).
Effect: median radius ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the CI lies below 0.5 ("far more sensitive": a factor of two, well beyond
    C2's 0.9, because an optimizer that only matched real-mixture directions would not be
    "far more" sensitive) (equivalently the sign test's p_adj <= 0.01).
Set-up, chosen in advance (C3 is the expensive claim): the first min(16, n) base prompts;
    R = 4 isotropic random starts; 10 normalized-gradient steps on the sphere (initial
    angle 0.3 rad, adapted per row, only improving steps accepted); optimisation radius
    r_opt = 0.5 x the median cov-random radius-to-threshold of those bases: exactly the
    radius at which a "far more sensitive" direction (ratio 0.5) must already cross, so the
    ascent pushes where the SESOI is decided, and it stays inside the random directions'
    plateau at every depth (a fixed fraction of the median norm would not: cov-random
    directions cross at ~0.64 x median norm at layer 1 but ~0.14 x at layer 29). Ten steps
    keep a cell within about a minute on 2 CPU cores; the ascent is then not converged
    (KL still rising), which can only make the optimized directions look less sensitive,
    i.e. it errs against the claim.
Source: the seed thread ("local optima in sensitivity"); Heimersheim & Mendel 2024.
"""
import time

import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, optimize_directions, readouts, stats, sweep

MAX_BASES = 16  # optimisation cost grows with bases x restarts x steps
RESTARTS = 4
STEPS = 10  # each step is one forward + backward of blocks L..N-1 for bases x restarts rows
LR = 0.3  # initial step angle, radians
RADIUS_FRACTION = 0.5  # r_opt as a fraction of the median cov-random radius-to-threshold (= the SESOI)

SPEC = ClaimSpec(
    id="C3",
    title="Local optima in sensitivity",
    statement="Directions found by gradient ascent on KL from random starts change the output at less than "
              "half the radius covariance-matched random directions need, on the same real bases.",
    source="seed thread; Heimersheim & Mendel 2024",
    null_hypothesis="median radius ratio (optimized / cov_random_mixture) >= 1",
    statistic="exact sign test of the median log radius-to-threshold ratio, paired over base prompts",
    effect="median_ratio",
    sesoi=0.5,
    alpha=0.01,
    kind="directional",
    alternative="less",
)


@claim(SPEC)
def test_c3_optimized_directions(cell, judge):
    threshold = cell.config.kl_threshold
    m = min(MAX_BASES, len(cell.prompts))
    tokens = cell.prompts.tokens[:m]
    random = cell.sweep_kind(directions.cov_random_mixture())  # cached, shared with C1/C2
    r_random = random.per_base_radius(threshold)[0][:m]
    censored_random = random.per_base_radius(threshold)[1][:m]
    started = time.perf_counter()  # C3's own cost: optimisation and the sweep of its optima
    r_opt = RADIUS_FRACTION * float(np.median(r_random)) * cell.stats.median_norm

    opt = optimize_directions(cell.model, cell.layer, tokens, r_opt, restarts=RESTARTS, steps=STEPS, lr=LR,
                              generator=cell.generator("C3", "restarts"))
    swept = sweep(cell.model, cell.layer, tokens, opt.directions, cell.radii_abs)  # kl (m, R, S)
    crossing = readouts.radius_at_threshold(swept.kl, cell.radii_rel, threshold)
    r_optimized, censored_optimized = readouts.median_crossing(crossing)
    seconds = time.perf_counter() - started

    estimate = stats.paired_log_ratio(
        r_optimized, r_random, alternative=SPEC.alternative, confidence_level=SPEC.ci_level, sesoi=SPEC.sesoi,
        censored_a=censored_optimized, censored_b=censored_random, documents=cell.documents[:m],
        n_resamples=cell.config.n_resamples, random_state=cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer),
    )
    final_kl = opt.kl.double()
    spread = (final_kl.max(dim=1).values / final_kl.min(dim=1).values.clamp_min(1e-12)).numpy()  # (m,)
    abs_cos = opt.pairwise_abs_cosine().numpy()  # (m, R(R-1)/2)
    d = cell.model.d_model
    judge(
        estimate,
        curves=[CurveSet("optimized", cell.radii_rel, swept.kl.median(dim=1).values.numpy()),
                CurveSet("cov_random_mixture", random.radii_rel, random.per_base_curve()[:m])],
        details={
            "kl_threshold_nats": threshold,
            "n_bases": m,
            "restarts": RESTARTS, "steps": STEPS, "initial_step_angle_rad": LR,
            "optimisation_radius_rel": r_opt / cell.stats.median_norm,
            "optimisation_radius_rule": f"{RADIUS_FRACTION} x median cov-random radius-to-threshold of the bases",
            "median_radius": {"optimized": float(np.median(r_optimized)), "cov_random_mixture": float(np.median(r_random))},
            "censored_fraction": {"optimized": float(censored_optimized.mean()),
                                  "cov_random_mixture": float(censored_random.mean())},
            "kl_at_optimisation_radius": {"random_start_median": float(opt.initial_kl.median()),
                                          "optimized_median": float(opt.kl.median())},
            "kl_trajectory_median": opt.trajectory.flatten(1).median(dim=1).values.tolist(),
            "optima_pairwise_abs_cos": {"median": float(np.median(abs_cos)), "max": float(abs_cos.max()),
                                        "random_pair_rms_1_over_sqrt_d": 1 / float(np.sqrt(d))},
            "optima_kl_spread_max_over_min": {"median": float(np.median(spread)), "max": float(spread.max())},
            "radius_unit": f"median ||resid|| at the site = {cell.stats.median_norm:.4g}",
        },
        costs={"cell": seconds, "optimisation": opt.seconds},  # timings vary run to run: not in the results hash
    )
