"""C3: local optima in sensitivity (C3: more sensitive than random; C3b: distinct optima).

C3
H1  Gradient ascent from random starts finds directions far more sensitive than random
    ones: along the optimized directions KL(clean || perturbed) first exceeds the threshold
    (default 0.1 nats) at less than half the radius that covariance-matched random
    directions (cov_random_mixture) need, paired over base prompts.
H0  The median radius ratio (optimized / cov_random_mixture) is at least 1.
Statistic: exact sign test of the median log(radius ratio), paired over base prompts; each base's
    radius is the median over its R optima (optimized) or its K directions (cov-random).
Effect: median radius ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the CI lies below 0.5 ("far more sensitive": a factor of two, well beyond
    C2's 0.9, because an optimizer that only matched real-mixture directions would not be
    "far more" sensitive) (equivalently the sign test's p_adj <= 0.01).

C3b
H1  The restarts land in distinct optima: per base prompt, the median over its R(R-1)/2 pairs
    of optima of the angle between them as lines, arccos |cos|, exceeds 60 degrees.
H0  The median over bases of that angle is at most 0 degrees (all restarts on one line).
Statistic: exact sign test of the median per-base angle against 60 degrees, over base prompts
    (one value per base: its pairs share the base, so they are not independent units).
Effect: median per-base pairwise angle (degrees), order-statistic interval at 1 - 2 alpha / M.
Supported if the CI lies above 60 degrees; negligible ("the restarts collapse to one
    direction") if it lies wholly below 60 degrees. Reversed cannot occur (an angle is >= 0).
    Why 60 degrees (|cos| = 0.5): two optima sharing more than a quarter of their variance
    (cos^2 > 0.25) are best read as one direction found twice with noise; below it they are
    different directions. The null reference, random unit vectors in d dimensions, is far
    from either end (median |cos| ~ 0.674 / sqrt(d), ~ 88 degrees at d = 576): optima are
    expected to share some structure, so "as orthogonal as random" is not the bar; the record
    reports, against that null, each pair's |cos| x sqrt(d) and the fraction of pairs beyond
    the random 99th percentile (|cos| > 2.576 / sqrt(d)).
Health check (C3b inconclusive): the optima have not left their random starts (median
    |cos(u_opt, u_start)| > 0.5, i.e. moved less than 60 degrees): random starts in d
    dimensions are mutually near-orthogonal, so optima still near them would look "distinct"
    by inheritance. Convergence is reported, not gated on: at layer 1 the KL at r_opt keeps
    rising slowly for many steps (measured on 4 bases x 4 restarts: median KL 11 nats after 10
    steps, 21 after 20, 30 after 45, still +2 % per 5 steps), so a strict criterion is not
    affordable (each step costs a forward and backward for every row). C3 needs no check: an
    unfinished ascent can only make the optimized directions look less sensitive, i.e. it
    errs against C3.

Set-up, chosen in advance (C3 is the expensive claim): the first min(16, n) base prompts;
    R = 4 isotropic random starts; normalized-gradient steps on the sphere (initial angle 0.3
    rad, adapted per row, only improving steps accepted), with a stated convergence criterion:
    a restart stops (is frozen) once its KL rose by less than 10 % (relative) over its last 5
    steps, (KL_t - KL_{t-5}) / KL_t < 0.1, about 2 % a step; at most 20 steps. Cost: at most
    twice the former fixed 10 steps, per step unchanged (16 x 4 rows, one forward and backward
    of blocks L..N-1). Measured at layer 1, n = 32, on the shared 2-core machine (timings
    swing with the load): 10 fixed steps 309 s of optimisation; 20 steps (45 % of restarts
    converged) 122 s; the record's costs give each run's own.
    Optimisation radius r_opt = 0.5 x the median cov-random radius-to-threshold of those
    bases: exactly the radius at which a "far more sensitive" direction (ratio 0.5) must
    already cross, so the ascent pushes where the SESOI is decided, and it stays inside the
    random directions' plateau at every depth (a fixed fraction of the median norm would not:
    cov-random directions cross at ~0.64 x median norm at layer 1 but ~0.14 x at layer 29).
    Reported with each cell: every restart's steps and its last relative change, cos(u_opt, x)
    with the base activation, and the share of each optimum in the top-10 principal components
    of the site's activations (the eigenvectors of the fitted covariance, cell.stats.cov),
    beside the same for cov-random directions and the isotropic expectation 10 / d.
Source: the seed thread ("local optima in sensitivity"); Heimersheim & Mendel 2024.
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, optima, stats

MAX_BASES = 16  # optimisation cost grows with bases x restarts x steps
RESTARTS = 4
MAX_STEPS = 20  # each step is one forward + backward of blocks L..N-1 for bases x restarts rows
TOL = 0.1  # converged: relative KL rise over the last WINDOW steps below 10 %
WINDOW = 5
LR = 0.3  # initial step angle, radians
RADIUS_FRACTION = 0.5  # r_opt as a fraction of the median cov-random radius-to-threshold (= the SESOI)
DISTINCT_DEGREES = 60.0  # C3b's SESOI: |cos| = 0.5
MAX_START_COS = 0.5  # C3b is inconclusive if the median optimum is still within 60 degrees of its start
TOP_PCS = 10
RANDOM_Q99 = 2.576  # 99th percentile of |N(0, 1)|: |cos| x sqrt(d) of random unit vectors, large d

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

SPEC_DISTINCT = ClaimSpec(
    id="C3b",
    title="Local optima are distinct",
    statement="Gradient-ascent restarts from random starts land in distinct optima: the median pairwise angle "
              "between a base's optima (as lines, arccos |cos|) exceeds 60 degrees.",
    source="seed thread; Heimersheim & Mendel 2024",
    null_hypothesis="median per-base pairwise angle between optima <= 0 degrees (one direction)",
    statistic="exact sign test of the median per-base pairwise angle against 60 degrees, over base prompts",
    effect="median_difference",
    sesoi=DISTINCT_DEGREES,
    alpha=0.01,
    kind="directional",
    alternative="greater",
)


def optimized(cell) -> optima.OptimaRun:
    """The cell's optimisation and the sweep of its optima, run once and shared by C3 and C3b."""
    return cell.workspace.cached(("C3 optimized", cell.model_name, cell.layer), lambda: optima.optimize_cell(
        cell, max_bases=MAX_BASES, restarts=RESTARTS, steps=MAX_STEPS, lr=LR, tol=TOL, window=WINDOW,
        radius_fraction=RADIUS_FRACTION, tag=SPEC.id))


def distinctness(u, *, documents=None, alpha=SPEC_DISTINCT.alpha, n_resamples=9999, random_state=None):
    """C3b's estimate: the per-base median pairwise angle (degrees) against 0, SESOI 60 degrees."""
    per_base = np.median(optima.pair_angles_degrees(u), axis=1)  # (n,)
    return stats.paired_difference(per_base, np.zeros_like(per_base), alternative=SPEC_DISTINCT.alternative,
                                   confidence_level=1 - 2 * alpha, sesoi=SPEC_DISTINCT.sesoi, documents=documents,
                                   n_resamples=n_resamples, random_state=random_state)


@claim(SPEC, sequential=False)
def test_c3_optimized_directions(cell, judge):
    run = optimized(cell)  # the first m bases: R optima each, swept; the cov-random arm on the same bases
    estimate = stats.paired_log_ratio(
        run.r_optimized, run.r_random, alternative=SPEC.alternative, confidence_level=SPEC.ci_level,
        sesoi=SPEC.sesoi, censored_a=run.censored_optimized, censored_b=run.censored_random,
        documents=cell.documents[:run.m], n_resamples=cell.config.n_resamples,
        random_state=cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer))
    judge(
        estimate,
        curves=[CurveSet("optimized", cell.radii_rel, run.median_curve()),
                CurveSet("cov_random_mixture", run.random.radii_rel, run.random.per_base_curve(first=run.m))],
        details={
            "kl_threshold_nats": cell.config.kl_threshold, "n_bases": run.m,
            "restarts": RESTARTS, "max_steps": MAX_STEPS, "initial_step_angle_rad": LR,
            "convergence": optima.convergence_record(run.opt),
            "optimisation_radius_rel": run.r_opt / cell.stats.median_norm,
            "optimisation_radius_rule": f"{RADIUS_FRACTION} x median cov-random radius-to-threshold of the bases",
            "median_radius": {"optimized": float(np.median(run.r_optimized)),
                              "cov_random_mixture": float(np.median(run.r_random))},
            "censored_fraction": {"optimized": float(run.censored_optimized.mean()),
                                  "cov_random_mixture": float(run.censored_random.mean())},
            **optima.kl_record(run.opt),  # KL at r_opt, start vs optimum; its trajectory; the spread over restarts
            "radius_unit": cell.radius_unit,
        },
        costs={"cell": run.seconds, "optimisation": run.opt.seconds},  # timings vary run to run: not hashed
    )


@claim(SPEC_DISTINCT, sequential=False)
def test_c3b_distinct_optima(cell, judge):
    run = optimized(cell)  # the same optimisation as C3: free when C3 ran
    u = run.opt.directions.double()  # (m, R, d)
    estimate = distinctness(u, documents=cell.documents[:run.m], n_resamples=cell.config.n_resamples,
                            random_state=cell.config.cell_seed(SPEC_DISTINCT.id, cell.model_name, cell.layer))
    cov_random = cell.directions(directions.cov_random_mixture())[:run.m]  # (m, K, d) the cached draws
    geometry = optima.optima_geometry(run.opt, cell.base_activations()[:run.m], cov_random, cell.stats,
                                      top_pcs=TOP_PCS, random_q99=RANDOM_Q99)
    judge(
        estimate,
        curves=[CurveSet("optimized", cell.radii_rel, run.median_curve())],
        details={"n_bases": run.m, "restarts": RESTARTS, "d_model": cell.model.d_model,
                 "convergence": optima.convergence_record(run.opt), **geometry.details},
        problem=(f"the optima stayed near their random starts (median |cos(u_opt, u_start)| = {geometry.start_cos:.3g} "
                 f"> {MAX_START_COS:g}): mutually orthogonal starts would make them look distinct by inheritance. "
                 f"Try more steps (MAX_STEPS = {MAX_STEPS}, {100 * run.converged_fraction:.0f}% of "
                 "restarts converged)" if geometry.start_cos > MAX_START_COS else None),
        costs={"optimisation": run.opt.seconds},
    )
