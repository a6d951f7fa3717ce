"""C7: Story 1 is not the explanation: the plateau is already in the final residual stream.

Story 1 (seed): perturbations do change the activations, but the logprobs barely move because
of the final norm, the unembedding or the softmax. If so, the plateau (C1's effect) would
vanish when the output change is read before the final norm. The claim is that it does not.
Read-out (changed after the first results, claims.md): the blocks' response at the final
    residual stream, ||Δh_final - r u||: the change the blocks added, without the perturbation
    the skip path carries. The raw ||Δh_final|| is about r for every base, so its real/Gaussian
    radius ratio is 1 by construction at late layers; the raw form stays in details, labelled.
H1  Along the same cov-random directions, the blocks' response at the final residual stream
    first reaches a fixed fraction of the clean final-residual norm at a larger radius from a
    real base than from its Gaussian N(mu, Sigma) base.
H0  The median radius ratio (real / Gaussian base) is at most 1.
Threshold, fixed before looking at the radii: 10% of the median clean final-residual norm of
    the real bases (after the last block, before the final norm). One threshold for both arms.
    A curve that never reaches it (after the schedule is extended to 16 x the median norm) is
    a right-censored radius, placed against the claim.
Statistic: exact sign test of the median log(radius ratio), paired over base prompts (C1's sweeps).
Effect: median radius ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the interval lies above 1.1 (equivalently the sign test's p_adj <= 0.01) (C1's SESOI).
Reported beside it (not judged): C1's ratio on KL; the raw ||Δh_final|| form (labelled: it
    carries the skip term); the curve shape at both read-outs.
Source: the seed thread (Story 1: "layer norm, unembed, or softmax shenanigans").
"""
from mcis_claims import ClaimSpec, CurveSet, claim, directions, response

SPEC = ClaimSpec(
    id="C7",
    title="Story 1 is not the explanation (plateau before the final norm)",
    statement="The plateau is already in the final residual stream before the final norm: the blocks' response "
              "there (||Δh_final - r u||) reaches a fixed fraction of the final-residual norm at a larger radius "
              "from real bases than from Gaussian bases.",
    source="seed thread (Story 1)",
    null_hypothesis="median radius ratio (real / Gaussian base) on the final blocks' response <= 1",
    statistic="exact sign test of the median log radius-to-threshold ratio of the blocks' response at the final "
              "residual stream, paired over base prompts",
    effect="median_ratio",
    sesoi=1.1,
    alpha=0.01,
    kind="directional",
    alternative="greater",
)
RESPONSE_FRACTION = 0.10  # of the median clean final-residual norm of the real bases


@claim(SPEC)
def test_c7_story1_final_residual(cell, judge):
    kind = directions.cov_random_mixture()
    real = cell.sweep_kind(kind, base="real")  # C1's sweeps
    gaussian = cell.sweep_kind(kind, base="gaussian")
    threshold = RESPONSE_FRACTION * response.median_clean_final_norm(real)  # one threshold for both arms
    # (n,) each: where the blocks' response ||Δh_final - r u|| first reaches it, median over the K directions
    r_real, censored_real = response.radius_to_final_response(real, threshold)
    r_gauss, censored_gauss = response.radius_to_final_response(gaussian, threshold)
    estimate = cell.paired_ratio(SPEC, r_real, r_gauss, censored_a=censored_real, censored_b=censored_gauss)

    judge(
        estimate,
        curves=[CurveSet("real_base", real.radii_rel, response.per_base_final_response(real), label="real base"),
                CurveSet("gaussian_base", gaussian.radii_rel, response.per_base_final_response(gaussian),
                         label="gaussian base")],
        curve_ylabel="blocks' response ||Δh_final - r u||, before the final norm",
        reference_lines={f"threshold ({RESPONSE_FRACTION:g} x median clean final norm)": threshold},
        # beside it, not judged: the raw ||Δh_final|| form (skip term included), C1's ratio on KL, curve shapes
        details=response.story1_details(cell, SPEC, kind, {"real": real, "gaussian": gaussian},
                                        {"real": (r_real, censored_real), "gaussian": (r_gauss, censored_gauss)},
                                        threshold=threshold, fraction=RESPONSE_FRACTION),
    )
