"""C7: Story 1 is not the explanation: the plateau is already in the final residual stream.

Story 1 (seed): perturbations do change the activations, but the logprobs barely move because
of the final norm, the unembedding or the softmax. If so, the plateau (C1's effect) would
vanish when the output change is read before the final norm. The claim is that it does not.
H1  Along the same cov-random directions, the L2 change of the final residual stream (after
    the last block, before the final norm) first exceeds an L2 threshold at a larger radius
    from a real base than from its Gaussian N(mu, Sigma) base.
H0  The median radius ratio (real / Gaussian base) on final_l2 is at most 1.
L2 threshold, fixed by rule before looking at the radii: 10% of the read-out's scale, where the
    scale is the median over ALL base prompts and directions, real and Gaussian bases pooled,
    of final_l2 at the largest radius (4 x median norm, where every output has clearly
    changed). One threshold for both arms, so the rule favours neither. (The clean
    final-residual norm would be the natural scale, but the sweep engine does not return it.)
Statistic: exact sign test of the median log(radius ratio), paired over base prompts (C1's sweeps).
Effect: median radius ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the CI lies above 1.1 (equivalently the sign test's p_adj <= 0.01) (C1's SESOI).
Reported beside it (not judged): C1's ratio on KL, and the curve shape at both read-outs
    (median sharpness on the radius grid, median radius-to-threshold), for comparison.
Source: the seed thread (Story 1: "layer norm, unembed, or softmax shenanigans").
"""
import numpy as np

from mcis_claims import ClaimSpec, CurveSet, claim, directions, readouts, stats

SPEC = ClaimSpec(
    id="C7",
    title="Story 1 is not the explanation (plateau before the final norm)",
    statement="The plateau is already in the final residual stream before the final norm: its L2 change "
              "passes a fixed threshold at a larger radius from real bases than from Gaussian bases.",
    source="seed thread (Story 1)",
    null_hypothesis="median radius ratio (real / Gaussian base) on final-residual L2 <= 1",
    statistic="exact sign test of the median log radius-to-L2-threshold ratio, paired over base prompts",
    effect="median_ratio",
    sesoi=1.1,
    alpha=0.01,
    kind="directional",
    alternative="greater",
)
L2_FRACTION = 0.10  # of the pooled median final_l2 at the largest radius


@claim(SPEC)
def test_c7_story1_final_residual(cell, judge):
    kind = directions.cov_random_mixture()
    kl_threshold = cell.config.kl_threshold
    real = cell.sweep_kind(kind, base="real")  # C1's sweeps
    gaussian = cell.sweep_kind(kind, base="gaussian")
    radii = cell.radii_rel  # the schedule; a sweep extended past it (censoring) has more radii
    sweeps = {"real": real, "gaussian": gaussian}
    # (n, K, S) L2 change of the final residual stream, before the final norm
    final = {k: s.result.final_l2.double().numpy() for k, s in sweeps.items()}

    scale = float(np.median(np.concatenate([f[..., len(radii) - 1].ravel() for f in final.values()])))
    l2_threshold = L2_FRACTION * scale
    crossing = {k: readouts.radius_at_threshold(f, sweeps[k].radii_rel, l2_threshold) for k, f in final.items()}
    (r_real, censored_real), (r_gauss, censored_gauss) = (readouts.median_crossing(crossing[k])
                                                          for k in ("real", "gaussian"))
    seed = cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer)
    estimate = stats.paired_log_ratio(r_real, r_gauss, alternative=SPEC.alternative, confidence_level=SPEC.ci_level,
                                      sesoi=SPEC.sesoi, censored_a=censored_real, censored_b=censored_gauss,
                                      documents=cell.documents, n_resamples=cell.config.n_resamples,
                                      random_state=seed)

    # The same comparison at the logits (C1's effect), and the curve shapes at both read-outs.
    kl_real, kl_censored_real = real.per_base_radius(kl_threshold)
    kl_gauss, kl_censored_gauss = gaussian.per_base_radius(kl_threshold)
    at_logits = stats.paired_log_ratio(kl_real, kl_gauss, alternative="greater", confidence_level=SPEC.ci_level,
                                       censored_a=kl_censored_real, censored_b=kl_censored_gauss,
                                       n_resamples=cell.config.n_resamples, random_state=seed)
    curves = {("final_l2", k): np.median(f, axis=1) for k, f in final.items()}  # (n, S) per base
    curves.update({("kl", "real"): real.per_base_curve(), ("kl", "gaussian"): gaussian.per_base_curve()})
    shape = {f"{readout}|{base}": float(np.nanmedian(readouts.sharpness(c))) for (readout, base), c in curves.items()}

    judge(
        estimate,
        curves=[CurveSet("real_base", real.radii_rel, curves[("final_l2", "real")], label="real base"),
                CurveSet("gaussian_base", gaussian.radii_rel, curves[("final_l2", "gaussian")],
                         label="gaussian base")],
        curve_ylabel="||Δ final resid||, before the final norm",
        details={
            "directions": repr(kind),
            "readout": "final_l2: L2 change of the residual stream after the last block, before the final norm",
            "l2_threshold": l2_threshold,
            "l2_threshold_rule": f"{L2_FRACTION:g} x median final_l2 at the largest radius "
                                 f"({radii[-1]:g} x median norm), real and Gaussian bases pooled",
            "l2_scale": scale,
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
