"""C12: training makes the stable regions.

H1  Interpolating a real activation towards another prompt's real activation, the trained
    model's output changes in a step (sharp boundary between stable regions), while the
    same architecture at random initialisation changes smoothly: Janiak et al.'s
    sharpness is larger for the trained model than for the random-init model, paired over
    base prompts.
H0  The median sharpness ratio (trained / random init) is at most 1.
Set-up (Janiak et al. 2024): for each base prompt, x = its real activation at the site and
    b = the real activation of another prompt (drawn once from the fit pool, the same
    prompt for both models), each model's OWN activations of those prompts; the path
    x + t (b - x), t in linspace(0, 1, 21). Read-out d(t) = L2 change of the final residual
    stream before the final norm (final_l2), chosen over KL because the random model's
    near-uniform softmax makes KL ~ quadratic in the logit change, which alone reads as
    "sharp" (Golmant's output-curvature confound) and because it is Janiak et al.'s kind of
    metric (residual L2 at the read site). KL sharpness is reported beside it.
    sharpness = max_t d'(t) / d(1) x (steps - 1): 1 for a straight line, 20 for a step.
Statistic: exact sign test of the median log(sharpness ratio), paired over base prompts.
Effect: median sharpness ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the CI lies above 1.1 (equivalently the sign test's p_adj <= 0.01).
Source: Janiak et al. 2024, "Characterizing stable regions in the residual stream of LLMs"
    ("randomly initialized models do not exhibit these stable regions").
"""
import numpy as np
import torch

from mcis_claims import ClaimSpec, CurveSet, claim, directions, readouts, resid_pre, stats, sweep_points

STEPS = 21  # t = linspace(0, 1, STEPS)

SPEC = ClaimSpec(
    id="C12",
    title="Training makes the stable regions",
    statement="Along real-to-real interpolation paths the trained model's final residual changes more "
              "step-like (higher sharpness) than the randomly initialised model's.",
    source="Janiak et al. 2024 (arXiv 2409.17113)",
    null_hypothesis="median sharpness ratio (trained / random init) <= 1",
    statistic="exact sign test of the median log sharpness ratio, paired over base prompts",
    effect="median_ratio",
    sesoi=1.1,
    alpha=0.01,
    kind="directional",
    alternative="greater",
)


@claim(SPEC)
def test_c12_training_makes_regions(cell, judge):
    trained, random_name = cell.model, "random:" + cell.model_name
    untrained = cell.workspace.model(random_name)
    tokens = cell.prompts.tokens
    vocab = untrained.stack.unembed.shape[0]
    assert int(tokens.max()) < vocab, (f"{random_name} has a vocabulary of {vocab}; the base prompts use ids up to "
                                       f"{int(tokens.max())}: the random model must share the tokenizer")
    n = len(tokens)
    # the other prompt of each path: one draw from the fit pool, the same prompt for both models
    target = torch.randint(cell.stats.n_fit, (n,), generator=cell.generator("C12", "targets"))
    fit_tokens = cell.fit_tokens[target]
    ends = {"trained": cell.stats.activations[target].float(),
            "random init": resid_pre(untrained, cell.layer, fit_tokens)[:, -1]}  # each model's own activations
    t = torch.linspace(0, 1, STEPS)

    paths = {}
    for label, model in (("trained", trained), ("random init", untrained)):
        b = ends[label]
        paths[label] = sweep_points(model, cell.layer, tokens, lambda x, b=b: directions.real_other_path(x, b, t))
    l2 = {k: r.final_l2 for k, r in paths.items()}  # (n, STEPS)
    sharp = {k: readouts.sharpness(v) for k, v in l2.items()}
    sharp_kl = {k: readouts.sharpness(r.kl) for k, r in paths.items()}

    estimate = stats.paired_log_ratio(
        sharp["trained"], sharp["random init"], alternative=SPEC.alternative, confidence_level=SPEC.ci_level,
        sesoi=SPEC.sesoi, documents=cell.documents, n_resamples=cell.config.n_resamples,
        random_state=cell.config.cell_seed(SPEC.id, cell.model_name, cell.layer),
    )
    normalised = {k: (v / v[:, -1:]).numpy() for k, v in l2.items()}
    degenerate = max(float((v[:, -1] <= 0).float().mean()) for v in l2.values())
    judge(
        estimate,
        curves=[CurveSet(k, t.numpy(), v) for k, v in normalised.items()],
        curve_ylabel="d(t) / d(1): final residual L2 (pre-norm)", curve_xlabel="t (interpolation x -> b)",
        curve_yscale="linear",
        details={
            "readout": "final_l2 (residual after the last block, before the final norm)",
            "path": f"x + t (b - x), t = linspace(0, 1, {STEPS}); b = another prompt's real activation, "
                    "each model's own",
            "random_model": random_name,
            "median_sharpness": {k: float(np.nanmedian(v)) for k, v in sharp.items()},
            "median_sharpness_kl": {k: float(np.nanmedian(v)) for k, v in sharp_kl.items()},
            "sharpness_scale": f"1 = straight line, {STEPS - 1} = pure step",
            "median_d1_final_l2": {k: float(v[:, -1].median()) for k, v in l2.items()},
        },
        problem=(f"d(1) = 0 for {degenerate:.0%} of paths: sharpness undefined" if degenerate > 0.5 else None),
    )
