"""C12: training makes the stable regions.

H1  Interpolating a real activation towards another prompt's real activation, the trained
    model's output changes in a step (a sharp boundary between stable regions), while the
    same architecture at random initialisation changes smoothly: Janiak et al.'s sharpness
    of the output KL is larger for the trained model than for random-init copies, paired over
    base prompts.
H0  The median sharpness ratio (trained / random init) is at most 1.
Set-up (Janiak et al. 2024): for each base prompt, x = its real activation at the site and
    b = the real activation of another prompt (drawn once from the fit pool, the same
    prompt for every model), each model's OWN activations of those prompts; the path
    x + t (b - x), t in linspace(0, 1, 21); sharpness = max_t d'(t) / d(1) x (steps - 1):
    1 for a straight line, 20 for a step.
Read-outs: d(t) = KL(clean || path point) of the next-token distribution (primary, as claims.md
    states); Janiak et al.'s own read-out, the L2 change of the final residual AFTER the final
    norm, beside it (secondary). Changed: the first wave read the residual BEFORE the final
    norm, which at late layers is dominated by the skip term t (b - x), a straight line by
    construction. Caveat, reported not hidden: a random model's near-uniform softmax makes KL
    about quadratic in the logit change, which alone raises its KL sharpness; the normed
    residual read-out has no such confound, so the record carries both.
Random init: RANDOM_SEEDS copies (`random:<model>@<seed>`); per base prompt the comparison is
    with the median sharpness over the seeds, so a single lucky initialisation cannot decide.
    Each seed's own median ratio is in the record.
C12b: the same comparison against the shuffled control (`shuffled:<model>`: each 2-D block matrix
    permuted within itself; weight statistics kept, learned structure gone).
Statistic: exact sign test of the median log(sharpness ratio), paired over base prompts.
Effect: median sharpness ratio, order-statistic interval of the median at 1 - 2 alpha / M (M: the family).
Supported if the CI lies above 1.1 (equivalently the sign test's p_adj <= 0.01).
On a control model (`random:` or `shuffled:` in --models) the controls are those of the
    underlying trained model: a claim about training supported there is not about training.
Source: Janiak et al. 2024, "Characterizing stable regions in the residual stream of LLMs"
    ("randomly initialized models do not exhibit these stable regions").
"""
import numpy as np
import torch

from mcis_claims import ClaimSpec, CurveSet, claim, directions, readouts, resid_pre, stats, sweep_points
from mcis_claims.models import split_control

STEPS = 21  # t = linspace(0, 1, STEPS)
RANDOM_SEEDS = (0, 1, 2, 3, 4)

COMMON = dict(
    source="Janiak et al. 2024 (arXiv 2409.17113)",
    statistic="exact sign test of the median log KL-sharpness ratio, paired over base prompts",
    effect="median_ratio", sesoi=1.1, alpha=0.01, kind="directional", alternative="greater",
)
SPEC = ClaimSpec(
    id="C12",
    title="Training makes the stable regions (vs random init)",
    statement="Along real-to-real interpolation paths the trained model's output KL changes more step-like "
              f"(higher sharpness) than that of randomly initialised copies ({len(RANDOM_SEEDS)} seeds).",
    null_hypothesis="median KL-sharpness ratio (trained / median over random-init seeds) <= 1", **COMMON)
SPEC_SHUFFLED = ClaimSpec(
    id="C12b",
    title="Training makes the stable regions (vs shuffled weights)",
    statement="Along real-to-real interpolation paths the trained model's output KL changes more step-like "
              "than that of the shuffled control (each block matrix permuted within itself).",
    null_hypothesis="median KL-sharpness ratio (trained / shuffled) <= 1", **COMMON)


def underlying(name: str) -> str:
    """The trained model a control name stands for: 'shuffled:smollm2-135m@1' -> 'smollm2-135m'."""
    prefix = name.split(":", 1)[0]
    return split_control(name)[0] if prefix in ("random", "shuffled") else name


@claim(SPEC)
def test_c12_training_makes_regions(cell, judge):
    controls = [f"random:{underlying(cell.model_name)}@{seed}" for seed in RANDOM_SEEDS]
    judge_against(SPEC, cell, judge, controls, label="random init")


@claim(SPEC_SHUFFLED)
def test_c12b_shuffled_control(cell, judge):
    judge_against(SPEC_SHUFFLED, cell, judge, [f"shuffled:{underlying(cell.model_name)}"], label="shuffled")


def judge_against(spec, cell, judge, control_names, *, label):
    """Sharpness along the same paths in the trained model and each control; judged on KL."""
    tokens = cell.prompts.tokens
    n = len(tokens)
    # the other prompt of each path: one draw from the fit pool, the same prompt for every model
    target = torch.randint(cell.stats.n_fit, (n,), generator=cell.generator("C12", "targets"))
    fit_tokens = cell.fit_tokens[target]
    t = torch.linspace(0, 1, STEPS)
    paths = {"trained": _path(cell, cell.model_name, cell.stats.activations[target].float(), tokens, t)}
    for name in control_names:
        model = cell.workspace.model(name)
        vocab = model.stack.unembed.shape[0]
        assert int(tokens.max()) < vocab, (f"{name} has a vocabulary of {vocab}; the base prompts use ids up to "
                                           f"{int(tokens.max())}: the control must share the tokenizer")
        ends = resid_pre(model, cell.layer, fit_tokens)[:, -1]  # each model's own activations
        paths[name] = _path(cell, name, ends, tokens, t)
    sharp = {readout: {k: readouts.sharpness(getattr(r, field)) for k, r in paths.items()}
             for readout, field in (("kl", "kl"), ("normed_residual", "normed_final_l2"))}
    control = {readout: np.nanmedian(np.stack([s[name] for name in control_names]), axis=0)
               for readout, s in sharp.items()}  # per base prompt, the median over the control's seeds
    seed = cell.config.cell_seed(spec.id, cell.model_name, cell.layer)
    estimate = stats.paired_log_ratio(sharp["kl"]["trained"], control["kl"], alternative=spec.alternative,
                                      confidence_level=spec.ci_level, sesoi=spec.sesoi, documents=cell.documents,
                                      n_resamples=cell.config.n_resamples, random_state=seed)
    janiak = stats.paired_log_ratio(sharp["normed_residual"]["trained"], control["normed_residual"],
                                    alternative=spec.alternative, confidence_level=spec.ci_level, sesoi=spec.sesoi,
                                    documents=cell.documents, n_resamples=cell.config.n_resamples, random_state=seed)
    per_control = {name: {readout: float(np.nanmedian(s["trained"] / s[name])) for readout, s in sharp.items()}
                   for name in control_names}
    degenerate = max(float((r.kl[:, -1] <= 0).float().mean()) for r in paths.values())
    curves = {"trained": paths["trained"].kl, label: torch.stack([paths[c].kl for c in control_names]).median(0).values}
    judge(
        estimate,
        curves=[CurveSet(k, t.numpy(), (v / v[:, -1:]).numpy()) for k, v in curves.items()],
        curve_ylabel="d(t) / d(1): KL(clean || path point)", curve_xlabel="t (interpolation x -> b)",
        curve_yscale="linear",
        details={
            "readout": "KL(clean || path point), nats (primary)",
            "path": f"x + t (b - x), t = linspace(0, 1, {STEPS}); b = another prompt's real activation, "
                    "each model's own",
            "controls": control_names,
            "control_summary": "per base prompt, the median sharpness over the controls",
            "median_sharpness_kl": {k: float(np.nanmedian(v)) for k, v in sharp["kl"].items()},
            "median_sharpness_normed_residual": {k: float(np.nanmedian(v))
                                                 for k, v in sharp["normed_residual"].items()},
            "median_ratio_per_control": per_control,
            "normed_residual_readout": {"what": "L2 change of the final residual after the final norm "
                                                "(Janiak et al.'s read-out), secondary", **janiak.to_dict()},
            "sharpness_scale": f"1 = straight line, {STEPS - 1} = pure step",
        },
        problem=(f"d(1) = 0 for {degenerate:.0%} of paths: sharpness undefined" if degenerate > 0.5 else None),
    )


def _path(cell, model_name, ends, tokens, t):
    """The interpolation paths in one model, cached for the run (C12 and C12b share the trained model's)."""
    return cell.workspace.cached(
        ("C12 path", model_name, cell.model_name, cell.layer),
        lambda: sweep_points(cell.workspace.model(model_name), cell.layer, tokens,
                             lambda x: directions.real_other_path(x, ends, t)))
