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
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, readouts, stats

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
    kl_threshold = cell.config.kl_threshold
    real = cell.sweep_kind(kind, base="real")  # C1's sweeps
    gaussian = cell.sweep_kind(kind, base="gaussian")
    sweeps = {"real": real, "gaussian": gaussian}
    # (n, K, S) the blocks' response at the final residual stream, and (labelled) the raw change
    response = {k: s.result.response_l2[..., -1].double().numpy() for k, s in sweeps.items()}
    raw = {k: s.result.final_l2.double().numpy() for k, s in sweeps.items()}
    scale = float(real.result.clean_final_norm.double().median())
    threshold = RESPONSE_FRACTION * scale
    crossing = {k: readouts.radius_at_threshold(f, sweeps[k].radii_rel, threshold) for k, f in response.items()}
    (r_real, censored_real), (r_gauss, censored_gauss) = (readouts.median_crossing(crossing[k])
                                                          for k in ("real", "gaussian"))
    seed = cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer)
    estimate = stats.paired_log_ratio(r_real, r_gauss, alternative=SPEC.alternative, confidence_level=SPEC.ci_level,
                                      sesoi=SPEC.sesoi, censored_a=censored_real, censored_b=censored_gauss,
                                      documents=cell.documents, n_resamples=cell.config.n_resamples,
                                      random_state=seed)
    # labelled secondary: the raw ||Δh_final|| (skip term included), same threshold
    raw_crossing = {k: readouts.median_crossing(readouts.radius_at_threshold(f, sweeps[k].radii_rel, threshold))
                    for k, f in raw.items()}
    raw_form = stats.paired_log_ratio(raw_crossing["real"][0], raw_crossing["gaussian"][0], alternative="greater",
                                      confidence_level=SPEC.ci_level, censored_a=raw_crossing["real"][1],
                                      censored_b=raw_crossing["gaussian"][1], n_resamples=cell.config.n_resamples,
                                      random_state=seed)

    # The same comparison at the logits (C1's effect), and the curve shapes at both read-outs.
    kl_real, kl_censored_real = real.per_base_radius(kl_threshold)
    kl_gauss, kl_censored_gauss = gaussian.per_base_radius(kl_threshold)
    at_logits = stats.paired_log_ratio(kl_real, kl_gauss, alternative="greater", confidence_level=SPEC.ci_level,
                                       censored_a=kl_censored_real, censored_b=kl_censored_gauss,
                                       n_resamples=cell.config.n_resamples, random_state=seed)
    curves = {("response", k): np.median(f, axis=1) for k, f in response.items()}  # (n, S) per base
    curves.update({("kl", "real"): real.per_base_curve(), ("kl", "gaussian"): gaussian.per_base_curve()})
    shape = {f"{readout}|{base}": float(np.nanmedian(readouts.sharpness(c))) for (readout, base), c in curves.items()}

    judge(
        estimate,
        curves=[CurveSet("real_base", real.radii_rel, curves[("response", "real")], label="real base"),
                CurveSet("gaussian_base", gaussian.radii_rel, curves[("response", "gaussian")],
                         label="gaussian base")],
        curve_ylabel="blocks' response ||Δh_final - r u||, before the final norm",
        reference_lines={f"threshold ({RESPONSE_FRACTION:g} x median clean final norm)": threshold},
        details={
            "directions": repr(kind),
            "readout": "the blocks' response ||Δh_final - r u|| after the last block, before the final norm",
            "threshold": threshold,
            "threshold_rule": f"{RESPONSE_FRACTION:g} x median clean final-residual norm of the real bases",
            "median_clean_final_norm": scale,
            "raw_final_l2_form": {"note": "labelled secondary: ||Δh_final|| includes the skip term r u, so its "
                                          "ratio tends to 1 by construction at late layers",
                                  "estimate": raw_form.to_dict()},
            "median_radius_real": float(np.median(r_real)),
            "median_radius_gaussian": float(np.median(r_gauss)),
            "censored_fraction_real": float(censored_real.mean()),
            "censored_fraction_gaussian": float(censored_gauss.mean()),
            "at_logits_kl_ratio": at_logits.to_dict(),
            "at_logits_kl_threshold_nats": kl_threshold,
            "median_sharpness_on_radius_grid": shape,
            "sharpness_note": "max step of curve / curve at the largest radius, times steps; on the geometric "
                              "radius grid, not an interpolation path",
            "radius_unit": f"median ||resid|| at the site = {cell.stats.median_norm:.4g}",
        },
    )
