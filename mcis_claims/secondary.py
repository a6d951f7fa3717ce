"""Secondary read-outs every plateau claim reports beside its verdict (claims.md, last paragraph).

The verdict is decided at one KL threshold (--kl-threshold). A plateau claim should not
hinge on that choice, so its record also shows, at 0.01, 0.1 and 1 nats: each arm's median
radius and censored fraction, the effect and interval at the family level, the verdict the
same rule gives there, and the local log-log slope of KL against radius at the crossing.
These never change the cell's verdict; they say whether it is robust to the threshold.

`base_arms` is C1's own secondary: which base it is that resists (real, this context's, or a
smaller or larger norm), read from the same sweeps.
"""
from __future__ import annotations

import numpy as np

from . import stats
from .readouts import SECONDARY_THRESHOLDS, loglog_slope_at_crossing


def at_thresholds(spec, family: int, arms: dict, *, documents=None, select=None,
                  thresholds=SECONDARY_THRESHOLDS) -> dict:
    """arms: {"real": KindSweep, "gaussian": KindSweep} (A then B of the claim's ratio) -> {threshold: read-outs}.

    `select`: the bases the claim judges (a boolean mask or a slice, e.g. C6's low-margin half or
    C10's first m bases); `documents` are those of all the sweep's bases.
    """
    from .verdict import decide

    def pick(x):
        return x if select is None or x is None else x[select]

    (name_a, sweep_a), (name_b, sweep_b) = arms.items()
    out = {}
    for threshold in thresholds:
        (r_a, c_a), (r_b, c_b) = (tuple(map(pick, s.per_base_radius(threshold))) for s in (sweep_a, sweep_b))
        estimate = stats.paired_log_ratio(r_a, r_b, alternative=spec.alternative, sesoi=spec.sesoi,
                                          censored_a=c_a, censored_b=c_b, documents=pick(documents),
                                          n_resamples=200, random_state=0)
        decision = decide(spec, estimate, family=family)
        slopes = {name: _median_slope(s, threshold, pick) for name, s in arms.items()}
        out[f"{threshold:g}"] = {
            "median_radius": {name_a: float(np.median(r_a)), name_b: float(np.median(r_b))},
            "censored_fraction": {name_a: float(c_a.mean()), name_b: float(c_b.mean())},
            "effect": decision.effect, "interval": list(decision.interval), "verdict": decision.verdict,
            "loglog_slope_at_crossing_median": slopes,
        }
    return out


def _median_slope(sweep, threshold: float, pick=lambda x: x) -> float | None:
    """Median over bases of the log-log slope of each base's median curve (over its K directions)."""
    slope = loglog_slope_at_crossing(pick(np.median(sweep.kl.numpy(), axis=1)), sweep.radii_rel, threshold)
    return float(np.nanmedian(slope)) if np.isfinite(slope).any() else None


def summary(readouts: dict, verdict: str) -> dict:
    """Whether the cell's verdict is the same at every secondary threshold, and the verdicts there."""
    verdicts = {threshold: r["verdict"] for threshold, r in readouts.items()}
    return {"verdict_by_kl_threshold": verdicts, "same_verdict_at_every_threshold": len(set(verdicts.values())) == 1}


def base_arms(spec, cell, sweeps: dict) -> dict:
    """C1's descriptive arms: another prompt's real activation as the base, radii relative to each
    base's own norm, and each arm's clean-output entropy. They separate "real" from "this context's"
    and from "a smaller or larger norm", the two readings a real-vs-Gaussian gap leaves open.

    sweeps: {"real", "gaussian", "other_real"} -> KindSweep of the same directions on each base.
    """
    threshold, median_norm = cell.config.kl_threshold, cell.stats.median_norm
    bases = {"real": cell.base_activations(), "gaussian": cell.gaussian_bases(),
             "other_real": cell.other_real_bases()}  # (n, d) each, cached
    arms = {name: (*sweeps[name].per_base_radius(threshold), bases[name]) for name in bases}  # (radius, censored, base)
    relative = {name: (r * median_norm / base.norm(dim=-1).double().numpy(), c) for name, (r, c, base) in arms.items()}

    def ratio(a, b, table):
        (ra, ca), (rb, cb) = table[a][:2], table[b][:2]
        est = stats.paired_log_ratio(ra, rb, alternative="two-sided", confidence_level=spec.ci_level,
                                     censored_a=ca, censored_b=cb, documents=cell.documents,
                                     n_resamples=cell.config.n_resamples,
                                     random_state=cell.config.cell_seed(spec.id, cell.model_name, cell.layer, a, b))
        return {"median_ratio": est.value, "ci": list(est.confidence_interval), "ci_level": spec.ci_level}

    return {
        "note": "descriptive, not judged",
        "other_real": {"what": "another prompt's real activation (fit pool) as the base, in this prompt's context",
                       "median_radius": float(np.median(arms["other_real"][0])),
                       "censored_fraction": float(arms["other_real"][1].mean()),
                       "real_vs_other_real": ratio("real", "other_real", arms),
                       "other_real_vs_gaussian": ratio("other_real", "gaussian", arms)},
        "radius_relative_to_own_norm": {
            "what": "radius to the threshold / ||base||, per base",
            "median": {name: float(np.median(r)) for name, (r, _) in relative.items()},
            "real_vs_gaussian": ratio("real", "gaussian", relative),
            "median_base_norm_over_site_median": {name: float(base.norm(dim=-1).median()) / median_norm
                                                  for name, (_, _, base) in arms.items()}},
        "clean_entropy_nats": {name: float(s.result.clean_entropy.median()) for name, s in sweeps.items()},
    }
