"""C13's geometry: the L^p exponent of an iso-response contour over two directions.

Ferreira da Silva & Heimersheim (2026) perturb an activation a along two directions with a
norm-preserving exponential-map chart, find the contour where the read-out reaches a
threshold T, normalise it by its axis intercepts and fit |x|^p + |y|^p = 1: p = 2 for a
smooth (locally quadratic-norm) response, p > 2 for a response that resists mixtures
("feature-specific error correction").

A linear response with correlated read-offs fakes p > 2 in one quadrant: with
rho = cos(J d1, J d2) the normalised contour is u^2 + v^2 + 2 rho u v = 1, whose diagonal
point is that of an L^p circle with p_app = 2 ln 2 / ln(2 (1 + rho)) (rho = -0.2 gives 2.95).
The mixed-sign quadrant sees -rho, so the artefact predicts p(+,-) < 2 whenever p(+,+) > 2,
and dq = 1/p(+,+) + 1/p(+,-) - 1 = ln(1 - rho^2) / (2 ln 2), about 0; a symmetric L^p
response at p = 2.4 gives dq = -0.17. So all four quadrants are measured.

exp_map_points     a' = R (cos r a_hat + sin r v / r), v = alpha1 e1 + alpha2 e2 in the tangent plane
ray_grid           the 16 rays: 4 half-axes and 3 interior rays per quadrant
find_intercepts    per ray, the angle where the read-out first reaches T (coarse grid + 1 secant step)
quadrant_p         normalise each quadrant's contour by its axes and fit p
fit_lp             least-squares p of |x|^p + |y|^p = 1 (radial residuals, p in [0.5, 10])
artefact_p         p_app(rho) = 2 ln 2 / ln(2 (1 + rho))
measure_cell       C13 at one cell: contrastive and control pairs, measured on the first anchors
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError, McisError

P_BOUNDS = (0.5, 10.0)
INTERIOR_DEGREES = (22.5, 45.0, 67.5)  # rays inside each quadrant; the axes bound it
QUADRANTS = ((1, 1), (1, -1), (-1, 1), (-1, -1))  # (+,+), (+,-), (-,+), (-,-)
QUADRANT_NAMES = ("++", "+-", "-+", "--")
WINDOW = math.radians(60)  # the paper's largest angle
COARSE = tuple(np.linspace(WINDOW / 4, WINDOW, 4))  # 15, 30, 45, 60 degrees


def artefact_p(rho):
    """The exponent a linear response with read-off correlation rho shows on the diagonal.

    >>> round(float(artefact_p(-0.2)), 3), float(artefact_p(0.0))
    (2.948, 2.0)
    """
    rho = np.asarray(rho, dtype=np.float64)
    if np.any((rho <= -0.5) | (rho >= 1)):
        raise InputError(f"rho={rho}: p_app is defined for -0.5 < rho < 1 (2 (1 + rho) > 1)")
    return 2 * math.log(2) / np.log(2 * (1 + rho))


def lp_radius(psi, p: float) -> np.ndarray:
    """Radius of the unit L^p circle at polar angle psi (first quadrant)."""
    c, s = np.abs(np.cos(psi)), np.abs(np.sin(psi))
    return (c ** p + s ** p) ** (-1.0 / p)


def fit_lp(x, y) -> float:
    """p minimising the radial misfit of points (x, y) to |x|^p + |y|^p = 1, p in [0.5, 10].

    >>> psi = np.radians([22.5, 45, 67.5])
    >>> r = lp_radius(psi, 3.0)
    >>> round(fit_lp(r * np.cos(psi), r * np.sin(psi)), 3)
    3.0
    """
    from scipy.optimize import minimize_scalar

    x, y = np.abs(np.asarray(x, dtype=np.float64)), np.abs(np.asarray(y, dtype=np.float64))
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise InputError(f"x {x.shape} and y {y.shape}: pass two 1-D arrays of contour points of one length")
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or np.any(np.hypot(x, y) == 0):
        raise InputError("contour points must be finite and off the origin")
    psi, radius = np.arctan2(y, x), np.hypot(x, y)
    result = minimize_scalar(lambda p: float(np.sum((radius - lp_radius(psi, p)) ** 2)), bounds=P_BOUNDS,
                             method="bounded", options={"xatol": 1e-6})
    return float(result.x)


@dataclass(frozen=True)
class Rays:
    """Unit coefficient vectors (c1, c2) in the (e1, e2) plane: rows 0-3 are +e1, +e2, -e1, -e2."""

    coefficients: np.ndarray  # (R, 2)
    axis: dict  # quadrant index -> (row of its e1 half-axis, row of its e2 half-axis)
    interior: dict  # quadrant index -> rows of its interior rays, in INTERIOR_DEGREES order


def ray_grid() -> Rays:
    rows = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)]
    axis, interior = {}, {}
    for q, (s1, s2) in enumerate(QUADRANTS):
        axis[q] = (0 if s1 > 0 else 2, 1 if s2 > 0 else 3)
        interior[q] = []
        for degrees in INTERIOR_DEGREES:
            phi = math.radians(degrees)
            interior[q].append(len(rows))
            rows.append((s1 * math.cos(phi), s2 * math.sin(phi)))
    return Rays(np.array(rows), axis, interior)


def tangent_basis(anchor: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., d) anchors and directions -> orthonormal e1, e2 spanning d1, d2's projection on the tangent plane."""
    a_hat = anchor / anchor.norm(dim=-1, keepdim=True)

    def project(v):
        return v - (v * a_hat).sum(-1, keepdim=True) * a_hat

    e1 = project(d1)
    e1 = e1 / e1.norm(dim=-1, keepdim=True)
    e2 = project(d2)
    e2 = e2 - (e2 * e1).sum(-1, keepdim=True) * e1
    e2 = e2 / e2.norm(dim=-1, keepdim=True)
    return e1, e2


def exp_map_points(anchor: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor, alpha1: torch.Tensor,
                   alpha2: torch.Tensor) -> torch.Tensor:
    """R (cos r a_hat + sin r v / r) with v = alpha1 e1 + alpha2 e2, r = |v| (radians): norm preserved.

    anchor, e1, e2: (..., d); alpha1, alpha2: (..., M) -> (..., M, d).
    """
    R = anchor.norm(dim=-1, keepdim=True)  # (..., 1)
    a_hat = anchor / R
    v = alpha1[..., None] * e1[..., None, :] + alpha2[..., None] * e2[..., None, :]  # (..., M, d)
    r = v.norm(dim=-1, keepdim=True)
    direction = torch.where(r > 0, v / r.clamp_min(1e-30), torch.zeros_like(v))
    return R[..., None, :] * (torch.cos(r) * a_hat[..., None, :] + torch.sin(r) * direction)


def find_intercepts(evaluate, shape: tuple[int, ...], threshold, *, coarse=COARSE, refine: int = 1):
    """Angle along each ray where the read-out first reaches `threshold`.

    evaluate(t) takes angles t of shape (*shape, G) (radians along each ray) and returns the
    read-out there, same shape. threshold: broadcastable to `shape`, or a function of the coarse
    grid's read-outs (*shape, G) that returns it (C13's T from the axis maxima). A coarse grid finds the first
    bracket; `refine` secant steps in log-log space (the read-out grows about as a power of t)
    narrow it; the intercept is the secant point of the last bracket. Returns (t, censored,
    threshold), each of `shape`; t is NaN and censored True where the read-out stays below the
    threshold up to the last coarse angle.
    """
    grid = torch.tensor(coarse, dtype=torch.float64)
    values = torch.as_tensor(evaluate(grid.expand(*shape, -1).clone()), dtype=torch.float64)
    if callable(threshold):
        threshold = threshold(values)
    threshold = torch.as_tensor(threshold, dtype=torch.float64).expand(shape)
    above = values >= threshold[..., None]
    censored = ~above.any(-1)
    first = torch.where(censored, torch.full_like(above[..., 0], len(coarse) - 1, dtype=torch.long),
                        above.double().argmax(-1))
    zero = torch.zeros(*shape, 1, dtype=torch.float64)
    grid_ext = torch.cat([zero, grid.expand(*shape, -1)], -1)
    values_ext = torch.cat([zero, values], -1)
    t_lo, t_hi = grid_ext.gather(-1, first[..., None])[..., 0], grid_ext.gather(-1, first[..., None] + 1)[..., 0]
    f_lo, f_hi = values_ext.gather(-1, first[..., None])[..., 0], values_ext.gather(-1, first[..., None] + 1)[..., 0]
    for _ in range(refine):
        t_mid = _secant(t_lo, t_hi, f_lo, f_hi, threshold)
        f_mid = torch.as_tensor(evaluate(t_mid[..., None].clone()), dtype=torch.float64)[..., 0]
        up = f_mid >= threshold
        t_hi, f_hi = torch.where(up, t_mid, t_hi), torch.where(up, f_mid, f_hi)
        t_lo, f_lo = torch.where(up, t_lo, t_mid), torch.where(up, f_lo, f_mid)
    t = _secant(t_lo, t_hi, f_lo, f_hi, threshold)
    return torch.where(censored, torch.full_like(t, float("nan")), t), censored, threshold


def _secant(t_lo, t_hi, f_lo, f_hi, threshold):
    """Where the threshold falls in [t_lo, t_hi]: log-log interpolation; from t = 0, a quadratic onset."""
    with np.errstate(all="ignore"):
        loglog = (t_lo > 0) & (f_lo > 0) & (f_hi > f_lo)
        frac_log = (torch.log(threshold) - torch.log(f_lo.clamp_min(1e-300))) / (
            torch.log(f_hi.clamp_min(1e-300)) - torch.log(f_lo.clamp_min(1e-300)))
        t_log = torch.exp(torch.log(t_lo.clamp_min(1e-300)) + frac_log.clamp(0, 1) * (torch.log(t_hi) - torch.log(
            t_lo.clamp_min(1e-300))))
        t_origin = t_hi * (threshold / f_hi.clamp_min(1e-300)).clamp(0, 1).sqrt()
        frac = ((threshold - f_lo) / (f_hi - f_lo)).nan_to_num(1.0).clamp(0, 1)
        t_lin = torch.where(t_lo > 0, t_lo + frac * (t_hi - t_lo), t_origin)
    t = torch.where(loglog, t_log, t_lin)
    # keep strictly inside the bracket, so a refinement step always shrinks it
    return t.clamp(t_lo + 1e-3 * (t_hi - t_lo), t_hi - 1e-3 * (t_hi - t_lo))


def quadrant_p(t: np.ndarray, rays: Rays | None = None) -> np.ndarray:
    """Intercept angles t (..., R) -> fitted p (..., 4) per quadrant (NaN where a ray is censored).

    Normalised with the exact-geodesic form of the paper: x = sin(t) cos(phi) / sin(t1),
    y = sin(t) sin(phi) / sin(t2), t1, t2 the quadrant's axis intercepts.
    """
    rays = rays or ray_grid()
    t = np.asarray(t, dtype=np.float64)
    out = np.full(t.shape[:-1] + (len(QUADRANTS),), np.nan)
    phi = np.radians(INTERIOR_DEGREES)
    for index in np.ndindex(t.shape[:-1]):
        row = t[index]
        for q in range(len(QUADRANTS)):
            i1, i2 = rays.axis[q]
            inner = row[rays.interior[q]]
            if not (np.isfinite(inner).all() and np.isfinite(row[i1]) and np.isfinite(row[i2])):
                continue
            x = np.sin(inner) * np.cos(phi) / np.sin(row[i1])
            y = np.sin(inner) * np.sin(phi) / np.sin(row[i2])
            out[index + (q,)] = fit_lp(x, y)
    return out


def delta_q(p_same, p_mixed):
    """dq = 1/p(+,+) + 1/p(+,-) - 1: about 0 for the linear sign artefact, 2/p - 1 for a symmetric L^p."""
    return 1 / np.asarray(p_same, dtype=np.float64) + 1 / np.asarray(p_mixed, dtype=np.float64) - 1


# ---------------------------------------------------------------- C13's directions


# Properties of a 10-token window of real text, read off its tokens, that split the fit pool in
# two: the contrastive (difference-of-means) directions. Fixed before any data was seen; the
# order is the preference order in which disjoint pairs are formed.
FUNCTION_WORDS = frozenset("the a an of to in and for on with at by from that as is was".split())


def _last_word(text: str) -> str:
    return text.split()[-1] if text.split() else ""


PROPERTIES = {
    # name: (test for side A, test for side B); each gets (window text, last token text)
    "word_start": (lambda w, t: t[:1].isspace(), lambda w, t: not t[:1].isspace() and t.strip().isalpha()),
    "capitalised": (lambda w, t: t.strip()[:1].isupper() and t.strip().isalpha(),
                    lambda w, t: t.strip()[:1].islower() and t.strip().isalpha()),
    "digit": (lambda w, t: any(c.isdigit() for c in t), lambda w, t: t.strip().isalpha()),
    "punctuation": (lambda w, t: bool(t.strip()) and not any(c.isalnum() for c in t),
                    lambda w, t: t.strip().isalpha()),
    "function_word": (lambda w, t: t.strip().lower() in FUNCTION_WORDS,
                      lambda w, t: t.strip().isalpha() and t.strip().lower() not in FUNCTION_WORDS),
    "quote_in_window": (lambda w, t: '"' in w or "'" in w.replace("'s", ""), lambda w, t: '"' not in w and "'" not in w),
    "plural_s": (lambda w, t: t.strip().isalpha() and t.strip().islower() and t.strip().endswith("s")
                 and len(t.strip()) > 3, lambda w, t: t.strip().isalpha() and t.strip().islower()
                 and not t.strip().endswith("s") and len(t.strip()) > 3),
    "past_ed": (lambda w, t: t.strip().isalpha() and t.strip().endswith("ed"),
                lambda w, t: t.strip().isalpha() and t.strip().endswith("ing")),
    "sentence_start": (lambda w, t: w[: -len(t)].rstrip().endswith((".", "!", "?")) if t else False,
                       lambda w, t: w[: -len(t)].rstrip()[-1:].isalpha() if t else False),
}
MIN_SIDE = 20  # a side with fewer windows gives too noisy a mean


def contrastive_directions(tokenizer, tokens: torch.Tensor, activations: torch.Tensor) -> dict:
    """name -> {"direction": unit DoM (d,), "n_a", "n_b"} for every property with >= MIN_SIDE windows a side.

    tokens (n, T) and activations (n, d): the fit pool's windows and their last-position
    activations at the site (disjoint from the anchors).
    """
    if tokens.shape[0] != activations.shape[0]:
        raise InputError(f"{tokens.shape[0]} windows but {activations.shape[0]} activations: pass one per window")
    windows = [tokenizer.decode(row.tolist()) for row in tokens]
    lasts = [tokenizer.decode([int(row[-1])]) for row in tokens]
    out = {}
    for name, (side_a, side_b) in PROPERTIES.items():
        a = torch.tensor([bool(side_a(w, t)) for w, t in zip(windows, lasts)])
        b = torch.tensor([bool(side_b(w, t)) for w, t in zip(windows, lasts)]) & ~a
        if int(a.sum()) < MIN_SIDE or int(b.sum()) < MIN_SIDE:
            continue
        dom = activations[a].double().mean(0) - activations[b].double().mean(0)
        out[name] = {"direction": dom / dom.norm(), "n_a": int(a.sum()), "n_b": int(b.sum())}
    return out


def random_diff_average(activations: torch.Tensor, k: int, generator: torch.Generator, *, n_diffs: int = 30):
    """(k, d) unit means of `n_diffs` random real-activation differences: the construction-matched control."""
    n = activations.shape[0]
    first = torch.randint(0, n, (k, n_diffs), generator=generator)
    second = (first + torch.randint(1, n, (k, n_diffs), generator=generator)) % n  # never the same window
    mean = (activations[first].double() - activations[second].double()).mean(1)
    return mean / mean.norm(dim=-1, keepdim=True)


def random_diff_average_pool(activations: torch.Tensor, k: int, n_pairs: int, generator: torch.Generator, *,
                             max_cos: float = 0.1, limit: int = 384) -> torch.Tensor:
    """`k` control directions, and more (k at a time, up to `limit`) until `n_pairs` pairs pass the filter.

    Where a few residual dimensions carry most of the norm (Gemma-3's layer 1: one dimension's mean
    |activation| is 190 x the median's), most difference means point along them and k = 12 may hold
    no pair with |cos| < 0.1. The first k are drawn exactly as `random_diff_average(..., k)` would,
    so where they suffice nothing changes; the pairs are still the first in preference order.
    """
    pool = random_diff_average(activations, k, generator)
    while len(low_cosine_pairs(pool, n_pairs, max_cos=max_cos)) < n_pairs and pool.shape[0] + k <= limit:
        pool = torch.cat([pool, random_diff_average(activations, k, generator)])
    return pool


def low_cosine_pairs(directions: torch.Tensor, k: int, *, max_cos: float = 0.1) -> list[tuple[int, int]]:
    """The first k pairs (i, j), i < j in preference order, with |cos| < max_cos (the paper's filter).

    A direction may serve in several pairs, as in the paper's all-pairs design; the unit of
    analysis is the anchor, so pairs need not be independent of each other.
    """
    cos = (directions @ directions.T).abs()
    pairs = [(i, j) for i in range(directions.shape[0]) for j in range(i + 1, directions.shape[0])
             if float(cos[i, j]) < max_cos]
    return pairs[:k]


# ---------------------------------------------------------------- C13's measurement on a model


@dataclass(frozen=True)
class LpMeasurement:
    """Per anchor (n) and direction pair (P): intercepts, thresholds, fitted p per quadrant, rho."""

    t: np.ndarray  # (n, P, R) intercept angles along the 16 rays (radians; NaN where censored)
    threshold: np.ndarray  # (n, P) T = 0.5 x min over the four half-axes of the read-out's max in the window
    p: np.ndarray  # (n, P, 4) fitted exponent per quadrant (++, +-, -+, --), from the L2 read-out
    p_kl: np.ndarray  # (n, P, 4) the same from the output KL, coarse grid only (beside it)
    rho: np.ndarray  # (n, P) cos(J e1, J e2) of the read-out's linear response, by finite differences
    censored: np.ndarray  # (n, P, R) the read-out never reached T within 60 degrees
    rows: int  # perturbed rows the engine ran

    def family_median(self, pairs, quadrants) -> np.ndarray:
        """(n,) per anchor: the median p over the given pairs and quadrants (NaN-aware)."""
        block = self.p[:, list(pairs)][:, :, list(quadrants)].reshape(self.p.shape[0], -1)
        with np.errstate(all="ignore"):
            out = np.full(block.shape[0], np.nan)
            keep = np.isfinite(block).any(1)
            out[keep] = np.nanmedian(block[keep], axis=1)
        return out


def measure_lp(model, layer: int, tokens: torch.Tensor, anchors: torch.Tensor, d1: torch.Tensor,
               d2: torch.Tensor, *, readout_block: int | None = None, epsilon: float = 0.02) -> LpMeasurement:
    """The four-quadrant contour of every (anchor, pair), perturbing the last position at `layer`.

    tokens (n, T) and anchors (n, d), the clean last-position activations at the site; d1, d2
    (P, d) the pairs' directions. Read-out: the L2 change of the last position's residual stream
    after block `readout_block` (default n_layers - 2, the paper's); KL beside it.
    """
    from .engine import sweep_points

    n, P = anchors.shape[0], d1.shape[0]
    readout_block = model.n_layers - 2 if readout_block is None else readout_block
    if not (layer <= readout_block < model.n_layers):
        raise InputError(f"layer {layer}: C13 reads the L2 change after block {readout_block}, which must "
                         f"not precede the perturbed layer; use an earlier layer")
    if d1.shape != d2.shape or d1.dim() != 2 or d1.shape[-1] != anchors.shape[-1]:
        raise InputError(f"d1 {tuple(d1.shape)} and d2 {tuple(d2.shape)}: pass (P, d) directions with d = "
                         f"{anchors.shape[-1]}")
    column = readout_block - layer
    a = anchors.double()[:, None].expand(n, P, -1)
    e1, e2 = tangent_basis(a, d1.double()[None].expand(n, P, -1), d2.double()[None].expand(n, P, -1))
    rays = ray_grid()
    C = torch.tensor(rays.coefficients)  # (R, 2)
    R = C.shape[0]
    rows, coarse_kl = [0], {}

    def run(alpha1, alpha2):  # (n, P, M) angles -> read-outs (n, P, M)
        M = alpha1.shape[-1]
        points = exp_map_points(a, e1, e2, alpha1, alpha2).reshape(n, P * M, -1).float()
        result = sweep_points(model, layer, tokens, points)
        rows[0] += n * P * M
        return (result.resid_l2[..., column].reshape(n, P, M).double(), result.kl.reshape(n, P, M).double())

    def evaluate(t):  # (n, P, R, G) -> L2 read-out there
        G = t.shape[-1]
        l2, kl = run((t * C[:, 0, None]).reshape(n, P, R * G), (t * C[:, 1, None]).reshape(n, P, R * G))
        coarse_kl.setdefault("kl", kl.reshape(n, P, R, G))  # the first call is the coarse grid
        return l2.reshape(n, P, R, G)

    def half_threshold(values):  # (n, P, R, G) -> (n, P, R): 0.5 x min over half-axes of the window max
        return (0.5 * values[..., :4, :].amax(-1).amin(-1))[..., None].expand(n, P, R)

    t, censored, threshold = find_intercepts(evaluate, (n, P, R), half_threshold)
    t_kl, _, _ = find_intercepts(lambda _: coarse_kl["kl"], (n, P, R), half_threshold, refine=0)
    eps = torch.tensor([epsilon, 0.0, epsilon], dtype=torch.float64).expand(n, P, 3)
    l2, _ = run(eps, torch.tensor([0.0, epsilon, epsilon], dtype=torch.float64).expand(n, P, 3))
    n1, n2, n12 = l2[..., 0], l2[..., 1], l2[..., 2]
    rho = ((n12 ** 2 - n1 ** 2 - n2 ** 2) / (2 * n1 * n2)).numpy()
    return LpMeasurement(t=t.numpy(), threshold=threshold[..., 0].numpy(), p=quadrant_p(t.numpy(), rays),
                         p_kl=quadrant_p(t_kl.numpy(), rays), rho=rho, censored=censored.numpy(), rows=rows[0])


@dataclass(frozen=True)
class CellMeasurement:
    """C13 at one cell: the directions' pairs and their four-quadrant fits, shared by C13a and C13b."""

    result: LpMeasurement  # pairs ordered contrastive first, then control
    family: dict  # "contrastive" | "control" -> the pair indices into `result`
    pairs: dict  # "contrastive" | "control" -> each pair's description, with its cosine
    properties: dict  # contrastive property -> its split sizes {"n_a", "n_b"}
    seconds: float  # measure_lp's time (timing: never hashed)

    def details(self, cell) -> dict:
        """The record's read-outs beside the verdict: p per family and quadrant, dq, rho and p_app(rho), p from KL."""
        result, family = self.result, self.family
        quadrant = {}
        for fam, idx in family.items():
            for q, name in enumerate(QUADRANT_NAMES):
                quadrant[f"{fam} p({name})"] = float(np.nanmedian(result.p[:, idx, q]))
        p_same = result.p[:, :, 0]
        p_mixed = result.p[:, :, 1]
        with np.errstate(all="ignore"):
            dq = delta_q(p_same, p_mixed)
            rho = np.clip(result.rho, -0.45, 0.95)
            p_app = artefact_p(rho)
        ok = np.isfinite(p_same) & np.isfinite(p_app)
        r2 = float(np.corrcoef(p_same[ok], p_app[ok])[0, 1] ** 2) if ok.sum() > 2 else float("nan")
        return {
            "layer_read": f"L2 change of the last position after block {cell.model.n_layers - 2} (n - 2); perturbed "
                          f"at {cell.site}; exp-map chart, window 60 deg",
            "pairs": self.pairs, "contrastive_properties": self.properties, "n_anchors": int(result.p.shape[0]),
            "median_p_by_family_and_quadrant": quadrant,
            "median_dq": {fam: float(np.nanmedian(dq[:, idx])) for fam, idx in family.items()},
            "median_rho": {fam: float(np.nanmedian(result.rho[:, idx])) for fam, idx in family.items()},
            "median_p_app_of_rho": {fam: float(np.nanmedian(p_app[:, idx])) for fam, idx in family.items()},
            "r2_p_same_on_p_app": r2,
            "median_p_kl(++)": {fam: float(np.nanmedian(result.p_kl[:, idx, 0])) for fam, idx in family.items()},
            "censored_ray_fraction": float(result.censored.mean()),
            "engine_rows": result.rows,
            "mixed_quadrants": [1, 2], "same_quadrant": [0],
        }


def measure_cell(cell, *, n_anchors: int, n_pairs: int, tag: str = "C13") -> CellMeasurement:
    """Contrastive directions of the cell's fit pool and construction-matched controls
    (`cell.generator(tag, "control")`), the first `n_pairs` low-cosine pairs of each, measured on the
    first `n_anchors` base prompts. Raises McisError when a family has no pair with |cos| < 0.1."""
    n = min(n_anchors, len(cell.prompts))
    site = cell.stats
    contrastive = contrastive_directions(cell.model.tokenizer, cell.fit_tokens, site.activations)
    names = list(contrastive)
    con = torch.stack([contrastive[name]["direction"] for name in names])  # (directions, d)
    ctl = random_diff_average_pool(site.activations, 4 * n_pairs, n_pairs, cell.generator(tag, "control"))
    con_pairs = low_cosine_pairs(con, n_pairs)
    ctl_pairs = low_cosine_pairs(ctl, n_pairs)
    if not con_pairs or not ctl_pairs:
        raise McisError(f"C13 at {cell.site}: no {'contrastive' if not con_pairs else 'control'} pair with "
                        f"|cos| < 0.1 among {len(names) if not con_pairs else len(ctl)} directions; try another layer")
    d1 = torch.stack([con[i] for i, _ in con_pairs] + [ctl[i] for i, _ in ctl_pairs])  # (P, d)
    d2 = torch.stack([con[j] for _, j in con_pairs] + [ctl[j] for _, j in ctl_pairs])
    started = time.perf_counter()
    result = measure_lp(cell.model, cell.layer, cell.prompts.tokens[:n], cell.base_activations()[:n], d1, d2)
    seconds = time.perf_counter() - started
    family = {"contrastive": list(range(len(con_pairs))),
              "control": list(range(len(con_pairs), len(con_pairs) + len(ctl_pairs)))}
    pairs = {"contrastive": [f"{names[i]} x {names[j]} (cos {float(con[i] @ con[j]):+.3f})" for i, j in con_pairs],
             "control": [f"randomdiffavg {i} x {j} (cos {float(ctl[i] @ ctl[j]):+.3f})" for i, j in ctl_pairs]}
    properties = {name: {k: v for k, v in c.items() if k != "direction"} for name, c in contrastive.items()}
    return CellMeasurement(result=result, family=family, pairs=pairs, properties=properties, seconds=seconds)


def normalised_contour(t_row: np.ndarray, rays: Rays | None = None) -> dict:
    """quadrant index -> (x, y) arrays of its normalised contour points, axes included, signs kept."""
    rays = rays or ray_grid()
    phi = np.radians(INTERIOR_DEGREES)
    out = {}
    for q, (s1, s2) in enumerate(QUADRANTS):
        i1, i2 = rays.axis[q]
        inner = t_row[rays.interior[q]]
        x = np.concatenate([[1.0], np.sin(inner) * np.cos(phi) / np.sin(t_row[i1]), [0.0]])
        y = np.concatenate([[0.0], np.sin(inner) * np.sin(phi) / np.sin(t_row[i2]), [1.0]])
        out[q] = (s1 * x, s2 * y)
    return out


def plot_contours(result: LpMeasurement, family: dict, record, path) -> None:
    """One panel per family: a typical pair's normalised contours over the anchors, in all four
    quadrants, with the L^p curve at the median fitted p per quadrant and the circle (p = 2)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .figures import PLOT_COLOR, _info_box
    from .toys import _save

    fig = Figure(figsize=(12, 5.4), dpi=110)
    FigureCanvasAgg(fig)
    colors = {"contrastive": "#d62728", "control": "#1f77b4"}
    psi = np.linspace(0, np.pi / 2, 60)
    for k, (name, pairs) in enumerate(family.items()):
        ax = fig.add_axes((0.05 + 0.3 * k, 0.12, 0.26, 0.72))
        ax.plot(np.cos(np.linspace(0, 2 * np.pi, 200)), np.sin(np.linspace(0, 2 * np.pi, 200)), color="#888888",
                linestyle="--", linewidth=1, label="p = 2")
        if pairs:
            with np.errstate(all="ignore"):
                p_pp = np.nanmedian(result.p[:, pairs, 0], axis=0)
                typical = pairs[int(np.nanargmin(np.abs(p_pp - np.nanmedian(p_pp))))] if np.isfinite(p_pp).any() \
                    else pairs[0]
            for anchor in range(result.t.shape[0]):
                for q, (x, y) in normalised_contour(result.t[anchor, typical]).items():
                    ax.plot(x, y, color=colors[name], alpha=0.15, linewidth=0.8)
            for q, (s1, s2) in enumerate(QUADRANTS):
                p = float(np.nanmedian(result.p[:, typical, q]))
                if np.isfinite(p):
                    r = lp_radius(psi, p)
                    ax.plot(s1 * r * np.cos(psi), s2 * r * np.sin(psi), color=colors[name], linewidth=2.2)
                    ax.text(s1 * 0.55, s2 * 0.55, f"p={p:.2f}", ha="center", va="center", fontsize=9,
                            color=colors[name], fontweight="bold")
            ax.set_title(f"{name}: pair {typical - pairs[0] + 1} of {len(pairs)}", fontsize=10, loc="left")
        ax.axhline(0, color="#cccccc", linewidth=0.8)
        ax.axvline(0, color="#cccccc", linewidth=0.8)
        ax.set_xlim(-1.45, 1.45)
        ax.set_ylim(-1.45, 1.45)
        ax.set_aspect("equal")
        ax.set_xlabel("direction 1 (normalised by its axis intercept)", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.text(0.05, 0.93, f"{record.claim} {record.model} {record.site} — {record.verdict}", fontsize=12,
             fontweight="bold")
    fig.text(0.05, 0.89, "thin: each anchor's contour; thick: L^p at the median fitted p per quadrant; "
             "dashed: p = 2", fontsize=9, color="#555555")
    ax = fig.add_axes((0.64, 0.12, 0.01, 0.72))
    ax.axis("off")
    ax.text(1.5, 0.0, _info_box(record), transform=ax.transAxes, va="bottom", ha="left", fontsize=8.5,
            family="monospace", linespacing=1.35,
            bbox=dict(boxstyle="round,pad=0.5", facecolor="#f6f8fa",
                      edgecolor=PLOT_COLOR.get(record.verdict, "#888888"), linewidth=1.5))
    _save(fig, path)
