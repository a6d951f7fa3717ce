"""C9: near-orthogonality of random perturbations to the model's read-off directions.

H1  A small random (isotropic) unit perturbation of a real activation moves a read-off of
    the next MLP by about 1/sqrt(d) of what a perturbation of the same size along that
    read-off direction does: the RMS ratio |Δ read-off| random / aligned, times sqrt(d),
    lies within a factor 1.5 of 1, per base prompt.
H0  The median of ratio * sqrt(d) over base prompts lies outside (1/1.5, 1.5) (TOST).
Read-offs: units of the MLP of block L (the block the site feeds): Llama-family gate rows,
    GPT-2 `c_fc` rows, each read through that MLP's own input norm (RMSNorm with its gain and
    eps; GPT-2's LayerNorm with gain and bias), i.e. f_i(x) = w_i . norm(x). The aligned
    direction is the folded read-off direction unit(w_i * gain) (mean-centred for
    LayerNorm). The attention write between the site and the MLP is not included: the
    claim is about the direct linear read-off of the residual stream. The MLP of block L
    exists at every site L = 0..N-1, so the same read-off serves the last layer.
Per base prompt: K = 32 units drawn at random, M = 64 isotropic directions, radius
    r = 0.05 x the site's median norm (small, so the read-off is near-linear; chosen in
    advance); ratio_b = sqrt(mean over (unit, direction) of (Δ_random / Δ_aligned)^2),
    the RMS that the maths gives exactly 1/sqrt(d) for a linear read-off
    (tests/test_c9_orthogonality_math.py); its sampling error is ~sqrt(1/(2 K M)) ~ 2%.
Statistic: TOST, two one-sided exact sign tests of the median of log(ratio_b * sqrt(d)) against
    +-log(1.5), over base prompts.
Effect: median of ratio_b * sqrt(d), order-statistic interval at 1 - 2 alpha / M.
Supported if the CI lies inside (1/1.5, 1.5) (equivalently the TOST sign tests' p_adj <= 0.01).
    A factor 1.5 allows for the input norm's projection (a read-off direction with cosine c
    to x loses a factor 1 - c^2 of its aligned effect) while still telling 1/sqrt(d) from,
    e.g., 1/sqrt(d/2) (a perturbation confined to half the dimensions).
Source: the seed thread (the "correct behaviour + linear representations" explanation).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from mcis_claims import ClaimSpec, CurveSet, claim, stats

UNITS = 32  # read-off units per base prompt
RANDOM_DIRECTIONS = 64  # isotropic directions per base prompt
RADIUS = 0.05  # x median norm, the radius the claim is judged at
RADII = np.geomspace(0.005, 0.5, 11)  # for the figure; RADII[5] == RADIUS
MARGIN = 0.5  # ratio * sqrt(d) within (1/1.5, 1.5)

SPEC = ClaimSpec(
    id="C9",
    title="Near-orthogonality of random perturbations to read-offs",
    statement="A small random perturbation moves an MLP unit's read-off by about 1/sqrt(d) of what the same-size "
              "perturbation along the unit's read-off direction does.",
    source="seed thread (correct behaviour + linear representations)",
    null_hypothesis="median of (RMS |Δ| random / |Δ| aligned) * sqrt(d) lies outside (1/1.5, 1.5)",
    statistic="TOST (two one-sided exact sign tests of the median) on log(ratio * sqrt(d)), margin log(1.5), "
              "over base prompts",
    effect="median_ratio",
    sesoi=MARGIN,
    alpha=0.01,
    kind="equivalence",
)


def mlp_readoff(model, layer):
    """(rows (d_mlp, d), norm: x -> what the MLP sees, folded (d_mlp, d) read-off directions), float64."""
    stack, weights = model.stack, model.stack.layers[layer]
    if model.arch == "gpt2":
        gain, bias = (t.double().cpu() for t in weights["ln2"])
        rows = weights["w_in"].double().cpu()
        folded = rows * gain
        folded = folded - folded.mean(-1, keepdim=True)  # LayerNorm removes the mean: only the centred part reads
        return rows, lambda x: F.layer_norm(x, (x.shape[-1],), gain, bias, stack.eps), folded
    gain, rows = weights["norm2"].double().cpu(), weights["gate"].double().cpu()
    return rows, lambda x: gain * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + stack.eps), rows * gain


@claim(SPEC)
def test_c9_near_orthogonality(cell, judge):
    d = cell.model.d_model
    x = cell.base_activations().double()  # (n, d) real activations at the site
    n = x.shape[0]
    rows, norm, folded = mlp_readoff(cell.model, cell.layer)
    g = cell.generator("C9")
    units = torch.rand(n, rows.shape[0], generator=g).argsort(-1)[:, :UNITS]  # (n, K) distinct units per base
    w = rows[units]  # (n, K, d) what each unit multiplies its normed input by
    aligned = folded[units] / folded[units].norm(dim=-1, keepdim=True)  # (n, K, d)
    u = torch.randn(n, RANDOM_DIRECTIONS, d, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True)  # (n, M, d) isotropic
    clean = torch.einsum("nd,nkd->nk", norm(x), w)  # (n, K)
    cos_x = torch.einsum("nd,nkd->nk", x / x.norm(dim=-1, keepdim=True), aligned)

    radii_abs = RADII * cell.stats.median_norm
    delta_aligned, delta_random, ratio = [], [], []
    for r in radii_abs:
        da = (torch.einsum("nkd,nkd->nk", norm(x[:, None] + r * aligned), w) - clean).abs()  # (n, K)
        dr = (torch.einsum("nmd,nkd->nmk", norm(x[:, None] + r * u), w) - clean[:, None]).abs()  # (n, M, K)
        delta_aligned.append(da.pow(2).mean(-1).sqrt())
        delta_random.append(dr.pow(2).mean((-2, -1)).sqrt())
        ratio.append((dr / da[:, None]).pow(2).mean((-2, -1)).sqrt())
    delta_aligned, delta_random, ratio = (torch.stack(v, dim=-1).numpy() for v in (delta_aligned, delta_random, ratio))
    at = int(np.argmin(np.abs(RADII - RADIUS)))
    scaled = ratio[:, at] * math.sqrt(d)  # (n,) ~1 if near-orthogonal as the maths says

    estimate = stats.equivalence_log_ratio(
        scaled, np.ones_like(scaled), margin=MARGIN, alpha=SPEC.alpha, documents=cell.documents,
        n_resamples=cell.config.n_resamples,
        random_state=cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer),
    )
    judge(
        estimate,
        curves=[CurveSet("aligned with read-off", RADII, delta_aligned),
                CurveSet("isotropic", RADII, delta_random),
                CurveSet("isotropic x sqrt(d)", RADII, delta_random * math.sqrt(d))],
        curve_ylabel="|Δ read-off| (RMS over units)",
        details={
            "d_model": d,
            "readoff": f"block {cell.layer} MLP {'c_fc' if cell.model.arch == 'gpt2' else 'gate'} rows through "
                       "its input norm",
            "units_per_base": UNITS, "random_directions_per_base": RANDOM_DIRECTIONS,
            "radius_rel": float(RADII[at]),
            "median_ratio_random_over_aligned": float(np.median(ratio[:, at])),
            "one_over_sqrt_d": 1 / math.sqrt(d),
            "median_ratio_times_sqrt_d_by_radius": dict(zip(map(float, RADII.round(4)),
                                                            map(float, np.median(ratio * math.sqrt(d), axis=0)))),
            "median_abs_cos_readoff_vs_activation": float(cos_x.abs().median()),
            "predicted_ratio_times_sqrt_d_from_norm_projection": float(np.median(
                (1 / (1 - cos_x.pow(2))).mean(-1).sqrt().numpy())),  # linearised: sqrt(mean_k 1/(1 - c_k^2))
            "radius_unit": f"median ||resid|| at the site = {cell.stats.median_norm:.4g}",
        },
    )
