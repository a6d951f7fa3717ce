"""How many base prompts the sign test needs: its power, and the n an inconclusive verdict quotes.

An inconclusive cell says how many units would settle it (decision.md, "Power"), at power 0.8
for a true effect of 1.5 x the SESOI. `sign_test_power` and `sign_test_required_n` are the
binomial law of the exact sign test; `required_n` and `required_n_equivalence` read q, the
chance that a unit lands beyond the SESOI, off an observed sample. A `sample` here is a
`stats.PairedSample`; only its `.point` values are read, so this module needs nothing from
`stats`, which imports it.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _sps

from .errors import InputError

MAX_REQUIRED_N = 100_000


def sign_test_power(n, q: float, alpha: float) -> np.ndarray:
    """Power of the one-sided sign test at level alpha with n units, when P(d beyond the value) = q."""
    n = np.atleast_1d(np.asarray(n, dtype=np.int64))
    critical = _sps.binom.isf(alpha, n, 0.5) + 1  # smallest k with P(B >= k) <= alpha
    return _sps.binom.sf(critical - 1, n, q)


def sign_test_required_n(q: float, alpha: float, power: float = 0.8, *, q_other: float | None = None) -> int | None:
    """Smallest n at which the sign test (at one-sided alpha) has `power`, when P(d beyond) = q.

    With `q_other` (an equivalence: both one-sided tests must reject) the power is the
    Bonferroni lower bound 1 - (1 - power_1) - (1 - power_2). None if q <= 1/2 (no n suffices)
    or more than MAX_REQUIRED_N units would be needed.
    """
    if not (0 < alpha < 1 and 0 < power < 1):
        raise InputError(f"alpha={alpha!r}, power={power!r}: both must lie in (0, 1)")
    qs = [q] if q_other is None else [q, q_other]
    if any(not (0.5 < x <= 1) for x in qs):
        return None
    start = 1
    while start <= MAX_REQUIRED_N:  # chunks of growing size: most answers lie in the first ones
        n = np.arange(start, min(4 * start + 64, MAX_REQUIRED_N + 1))
        achieved = 1 - sum(1 - sign_test_power(n, x, alpha) for x in qs)
        hits = np.flatnonzero(achieved >= power)
        if hits.size:
            return int(n[hits[0]])
        start = int(n[-1]) + 1
    return None


def required_n(sample, *, sesoi: float, alpha: float, power: float = 0.8,
               alternative: str = "greater", target: float | None = None) -> int | None:
    """Units the sign test needs at one-sided `alpha` to reach `power` if the true effect is `target`.

    decision.md, "Power": the observed d (censored values at their bound) are shifted so
    that their median is `target` (default 1.5 x the SESOI on d's scale; for an existence
    claim, whose SESOI is the null, the observed median), q = P(d beyond the SESOI) is read
    off the shifted values, and the binomial power gives n. All on d's scale.
    """
    if alternative not in ("greater", "less"):
        raise InputError(f"alternative={alternative!r}: required_n is for one-sided claims")
    d = sample.point
    d = d[np.isfinite(d)]
    if d.size < 2 or not math.isfinite(sesoi):
        return None
    if target is None:
        target = 1.5 * sesoi if sesoi != 0 else float(np.median(d))
    shifted = d - np.median(d) + target
    q = float(np.mean(shifted > sesoi if alternative == "greater" else shifted < sesoi))
    return sign_test_required_n(q, alpha, power)


def required_n_equivalence(sample, *, margin: float, alpha: float,
                           power: float = 0.8) -> int | None:
    """As `required_n`, for TOST of the median within (-margin, margin) when the true median is 0."""
    d = sample.point
    d = d[np.isfinite(d)]
    if d.size < 2:
        return None
    shifted = d - np.median(d)
    return sign_test_required_n(float(np.mean(shifted > -margin)), alpha, power,
                                q_other=float(np.mean(shifted < margin)))
