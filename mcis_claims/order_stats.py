"""Order statistics of the median: the exact sign test and the interval that is its dual.

Every claim's verdict rests on these two (decision.md): the interval lies beyond a value
exactly when the sign test rejects it, and both are distribution-free, so skewed and
censored radii need no symmetry. They work on plain arrays of d; `stats` builds the paired
estimates on them and re-exports them, so claim files use `stats.median_interval` and
`stats.sign_test`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats as _sps

from .errors import InputError


class ConfidenceInterval(NamedTuple):
    low: float
    high: float


def order_statistic_rank(n: int, alpha: float) -> int:
    """The largest l with P(Binomial(n, 1/2) <= l - 1) <= alpha; 0 if even l = 1 is too wide.

    With d sorted, d_(l) is then a lower confidence bound for the median at one-sided level
    alpha (and d_(n-l+1) an upper one): d_(l) exceeds the median only if at most l - 1 of
    the n values fall below it.

    >>> order_statistic_rank(128, 0.01 / 32)   # decision.md: "roughly the 45th and 84th"
    45
    """
    if n < 1:
        return 0
    cdf = _sps.binom.cdf(np.arange(n), n, 0.5)  # P(B <= l - 1) for l = 1..n
    return int(np.count_nonzero(cdf <= alpha))


def median_interval(low, high=None, *, alpha: float) -> ConfidenceInterval:
    """Order-statistic interval of the median: each end one-sided at `alpha` (level 1 - 2 alpha).

    The lower end comes from `low`, the upper from `high` (the same values when nothing is
    censored). An end that n units cannot bound is -inf / +inf.

    >>> median_interval(np.arange(1.0, 11.0), alpha=0.06)   # P(B <= 1) = 0.011, P(B <= 2) = 0.055
    ConfidenceInterval(low=3.0, high=8.0)
    """
    low = np.sort(np.asarray(low, dtype=np.float64))
    high = low if high is None else np.sort(np.asarray(high, dtype=np.float64))
    rank = order_statistic_rank(low.size, alpha)
    if rank == 0:
        return ConfidenceInterval(-math.inf, math.inf)
    return ConfidenceInterval(float(low[rank - 1]), float(high[high.size - rank]))


def sign_test(d, value: float = 0.0, *, alternative: str = "greater") -> tuple[int, float]:
    """Exact sign test of H0: median(d) <= value ("greater") or >= value ("less") -> (count, p).

    Units equal to `value` count against the alternative (conservative, and what keeps the
    test dual to `median_interval`): p = P(Binomial(n, 1/2) >= #{d > value}) for "greater".

    >>> sign_test([1.0, 2, 3, 4, 5, 6], 0.0)
    (6, 0.015625)
    """
    d = np.asarray(d, dtype=np.float64)
    if alternative not in ("greater", "less"):
        raise InputError(f"alternative={alternative!r}: the sign test here is one-sided; choose greater or less")
    count = int(np.count_nonzero(d > value if alternative == "greater" else d < value))
    return count, float(_sps.binom.sf(count - 1, d.size, 0.5)) if d.size else 1.0
