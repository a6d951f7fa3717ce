"""C11: plateaus without superposition (the seed's counter-argument, tested on toy models).

Lawrence Chan's comment in the seed thread: plateaus follow from correct behaviour plus linear
read-offs, "with or without superposition". Toy models cross the two causes by design:

  superposition  40 sparse features in m = 80 (n/m = 0.5, none) or m = 10 (n/m = 4) hidden dims
  task           y = ReLU(x - theta): theta = 0 (identity, no threshold) or theta = 0.3 (thresholded)
  seeds          10 training seeds per cell, 40 toys (`mcis_claims.toys`: TMS, h = W x,
                 y_hat = ReLU(W^T h + b), Adam 2000 steps, each under a few seconds on one core)

Read-out, per toy (C1's, at the hidden layer): radius where ||delta y_hat|| first exceeds 0.1 x
the median clean ||y_hat||, from 256 real bases h = W x and from 256 Gaussian bases
N(mu, Sigma) fitted to 4096 real h, along the same cov-random directions; plateau ratio =
exp(median log(r_real / r_gaussian)). Each toy must have learned its task (held-out FVE >= 0.5).

The argument predicts an effect of the task and none of superposition:

C11a  H1  Thresholded targets make plateaus: the plateau ratio at theta = 0.3 over that at
          theta = 0 has a median above 1.1.   H0: median ratio <= 1.1.
C11b  H1  Superposition does not: the plateau ratio at n/m = 4 over that at n/m = 0.5 has a
          median inside (1/1.2, 1.2) (TOST; the margin of C4).   H0: outside.

Unit: the toy. A unit pairs two independently trained toys that differ only in the factor
tested (same level of the other factor, same seed index), so each effect has 2 x 10 = 20
independent units. Statistic: exact sign test / order-statistic interval of the median log
ratio (`stats.paired_log_ratio`, `stats.equivalence_log_ratio`) at the family-adjusted level:
with 20 units and M of about 36 cells the interval is the 3rd smallest to the 3rd largest unit.
Error correction in superposition (MCIS) predicts the opposite pattern: C11b refuted (a
superposition effect), whatever C11a says. `--layers` and `--models` do not apply.
Source: seed thread (Chan's comment); toy setup after Elhage et al. 2022 (TMS) and the
science brief (../shared/research/science-brief-c5-c11-c13.md, section 5).
"""
from mcis_claims import ClaimSpec, claim, stats

DESIGN = dict(superposition=(0.5, 4), theta=(0.0, 0.3), n_seeds=10)
MARGIN = 0.2  # C11b: equivalent if the median ratio lies within (1/1.2, 1.2)

SPEC_TASK = ClaimSpec(
    id="C11a",
    title="Toys: thresholded targets make plateaus",
    statement="Toy models trained on a thresholded target (y = ReLU(x - 0.3)) have a larger plateau ratio "
              "(real vs Gaussian base radius) than toys trained on the identity, paired over seeds.",
    source="seed thread (Chan: correct behaviour + linear read-offs); TMS toys",
    null_hypothesis="median ratio of plateau ratios (theta 0.3 / theta 0) <= 1.1",
    statistic="exact sign test / order-statistic interval of the median log ratio; unit: toy pair "
              "(superposition level, seed), 20 units",
    effect="median_ratio",
    sesoi=1.1,
    alpha=0.01,
    kind="directional",
    alternative="greater",
)
SPEC_SUPERPOSITION = ClaimSpec(
    id="C11b",
    title="Toys: superposition does not change plateaus",
    statement="Toy models with 4 features per hidden dimension have the same plateau ratio as toys without "
              "superposition (within a factor 1.2), paired over seeds.",
    source="seed thread (Chan: 'we don't need superposition to explain any of these results')",
    null_hypothesis="median ratio of plateau ratios (n/m 4 / n/m 0.5) outside (1/1.2, 1.2)",
    statistic="TOST: two one-sided exact sign tests of the median log ratio; unit: toy pair (theta, seed), "
              "20 units",
    effect="median_ratio",
    sesoi=MARGIN,
    alpha=0.01,
    kind="equivalence",
)


@claim(SPEC_TASK)
def test_c11a_task_makes_plateaus(toys, judge):
    design = toys.design(**DESIGN)
    thresholded, identity, units = design.pairs("theta")
    estimate = stats.paired_log_ratio(
        thresholded, identity, alternative=SPEC_TASK.alternative, confidence_level=SPEC_TASK.ci_level,
        sesoi=SPEC_TASK.sesoi, n_resamples=toys.config.n_resamples,
        random_state=toys.config.cell_seed(SPEC_TASK.id, design.name))
    judge(estimate, plot=design.plot, problem=design.problem(), costs=design.seconds,
          details={**design.details(), "units": units, "compared": "theta=0.3 / theta=0"})


@claim(SPEC_SUPERPOSITION)
def test_c11b_superposition_does_not(toys, judge):
    design = toys.design(**DESIGN)
    superposed, plain, units = design.pairs("superposition")
    estimate = stats.equivalence_log_ratio(
        superposed, plain, margin=MARGIN, alpha=SPEC_SUPERPOSITION.alpha, n_resamples=toys.config.n_resamples,
        random_state=toys.config.cell_seed(SPEC_SUPERPOSITION.id, design.name))
    judge(estimate, plot=design.plot, problem=design.problem(), costs=design.seconds,
          details={**design.details(), "units": units, "compared": "superposition=4 / superposition=0.5"})
