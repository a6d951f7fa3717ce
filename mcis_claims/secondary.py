"""Secondary read-outs every plateau claim reports beside its verdict (claims.md, last paragraph).

The verdict is decided at one KL threshold (--kl-threshold). A plateau claim should not
hinge on that choice, so its record also shows, at 0.01, 0.1 and 1 nats: each arm's median
radius and censored fraction, the effect and interval at the family level, the verdict the
same rule gives there, and the local log-log slope of KL against radius at the crossing.
These never change the cell's verdict; they say whether it is robust to the threshold.
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
