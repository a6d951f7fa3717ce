"""Optimized directions (claim C3): the most sensitive directions at a fixed radius.

For each base prompt, gradient ascent on the unit sphere maximises
KL(clean || perturbed) of the next-token distribution when the last-position
activation at `blocks.{L}.hook_resid_pre` is moved from x to x + r*u, from R random
(isotropic) starts. All (prompt x restart) rows run as one batch through the
single-position decoder (`DecodeStack`): the clean prompt runs once, its prefix
keys/values are kept, and each step differentiates only blocks L..N-1 for the last
position, never a full forward.

The ascent is a Riemannian normalized-gradient step with a per-row step size (an
angle, in radians) and acceptance: the tangent gradient g is projected off u and
normalised, the proposal is the geodesic point u' = cos(a) u + sin(a) g/|g|; a row
accepts u' when its KL rose (and grows its angle by 1.25), otherwise keeps u and
halves its angle. So every row's KL is non-decreasing along the trajectory, and the
directions stay unit (each point lies on the sphere; it is renormalised against drift).

Convergence (optional, `tol`): a row has converged once its KL's relative change over the
last `window` steps, (KL_t - KL_{t-window}) / KL_t, is below `tol`; from then on it is
frozen (its direction and KL stay as they were), and the ascent stops when every row has
converged or after `steps` steps (the maximum). Without `tol` every row runs `steps` steps.
The result reports each row's steps, whether it converged, and its last relative change.

    opt = optimize_directions(model, 1, tokens, radius, restarts=4, steps=25, lr=0.3, generator=g)
    opt.directions   # (n, R, d) unit
    opt.kl           # (n, R) KL at `radius` along each optimum, nats
    opt.trajectory   # (steps run + 1, n, R) accepted KL after each step; [0] is the random start
    opt.steps_taken  # (n, R) steps each row ran before it converged (or the maximum)

Precision: by default the ascent runs on a float64 copy of the model, float64 throughout
(`precision.in_float64`, `precision.keep_float64`): whether a step is accepted is a comparison of two
KLs, and in float32 rounding decided some of them, so the optimum a restart reached depended on the
host's kernels. A float64 step costs ~1.2-1.4x a float32 one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .engine import _check_tokens, clean_hidden_states
from .errors import InputError
from .precision import in_float64, keep_float64
from .sites import check_layer

PRECISIONS = ("float64", "float32")
GROW, SHRINK = 1.25, 0.5  # per-row step-size adaptation on acceptance / rejection
MAX_ANGLE = 1.0  # radians; a step never turns a direction further than this


@dataclass(frozen=True)
class OptimizedDirections:
    """Result of `optimize_directions`: one optimum per (prompt, restart)."""

    directions: torch.Tensor  # (n, R, d) unit, in the ascent's precision (float64 by default)
    kl: torch.Tensor  # (n, R) final KL(clean || perturbed) at `radius`, nats, float64 (as computed)
    initial_kl: torch.Tensor  # (n, R) KL at the random starts
    trajectory: torch.Tensor  # (steps run + 1, n, R) accepted KL per step
    radius: float
    steps: int  # the maximum number of steps
    lr: float
    seconds: float
    init: torch.Tensor | None = None  # (n, R, d) the unit random starts
    steps_taken: torch.Tensor | None = None  # (n, R) steps each row ran (to convergence, or `steps`)
    converged: torch.Tensor | None = None  # (n, R) bool: the row met the criterion (always False without tol)
    last_relative_change: torch.Tensor | None = None  # (n, R) (KL_T - KL_{T-window}) / KL_T at the row's end
    tol: float | None = None
    window: int = 0

    @property
    def precision(self) -> str:
        """What the ascent computed in: its directions keep the dtype of the model it ran on."""
        return str(self.directions.dtype).removeprefix("torch.")

    @property
    def restarts(self) -> int:
        return self.directions.shape[1]

    def pairwise_abs_cosine(self) -> torch.Tensor:
        """(n, R*(R-1)/2) |cos| between the optima of each prompt (distinct optima -> small)."""
        u = self.directions
        gram = (u @ u.transpose(1, 2)).abs()
        i, j = torch.triu_indices(u.shape[1], u.shape[1], offset=1)
        return gram[:, i, j]


class SensitivityObjective:
    """KL(clean || perturbed) at x + r*u for the last position, differentiable in u.

    Built once per (model, layer, tokens): the clean hidden states, the prefix K/V of
    blocks L..N-1 and the clean next-token log-probabilities are computed here without
    gradients; `__call__(u)` runs only blocks L..N-1 for the rows (n, R, d).
    """

    def __init__(self, model, layer: int, tokens: torch.Tensor, radius: float):
        tokens = _check_tokens(model, tokens)
        self.layer = check_layer(layer, model.n_layers, model.name)
        if not (isinstance(radius, (int, float)) and radius > 0):
            raise InputError(f"radius={radius!r}: must be a positive number in residual-norm units")
        self.stack = model.stack
        self.radius = float(radius)
        with torch.no_grad():
            hidden = clean_hidden_states(model, tokens)
            self.prefix = self.stack.build_prefix(hidden, self.layer, tokens=tokens)
            self.base = hidden[self.layer][:, -1]  # (n, d)
            self.clean_logp = self._logp(self.base[:, None])  # (n, 1, vocab), float64

    def _logp(self, h: torch.Tensor) -> torch.Tensor:
        for l in range(self.layer, self.stack.n_layers):
            h, _ = self.stack.block(l, h, self.prefix)
        # float64 softmax, as the engine: keeps the KL's rounding noise far below its value
        return torch.log_softmax(self.stack.final_residual_to_logits(h).double(), dim=-1)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """u: (n, R, d) unit directions -> KL (n, R), float64, differentiable in u."""
        if u.dim() != 3 or u.shape[0] != self.base.shape[0] or u.shape[-1] != self.base.shape[-1]:
            raise InputError(f"directions must be (n, R, d) with n={self.base.shape[0]}, d={self.base.shape[-1]}; "
                             f"got {tuple(u.shape)}")
        logp = self._logp(self.base[:, None] + self.radius * u.to(self.base.device, self.base.dtype))
        clean = self.clean_logp
        return (clean.exp() * (clean - logp)).sum(-1).clamp_min(0.0)


def optimize_directions(model, layer: int, tokens: torch.Tensor, radius: float, *, restarts: int = 4,
                        steps: int = 25, lr: float = 0.3, generator: torch.Generator | None = None,
                        init: torch.Tensor | None = None, tol: float | None = None,
                        window: int = 5, precision: str = "float64") -> OptimizedDirections:
    """Maximise KL(clean || perturbed) at `radius` over unit directions, from `restarts` random starts.

    tokens     LongTensor (n, T); the last position is perturbed at blocks.{layer}.hook_resid_pre.
    radius     absolute residual-norm units (e.g. a fraction of the site's median norm).
    restarts   R random isotropic starts per prompt (ignored when `init` (n, R, d) is given).
    steps      ascent steps; each costs one forward and one backward of blocks layer..N-1
               for n * R single-position rows.
    lr         initial step angle in radians (adapted per row).
    generator  seeds the random starts: the same generator state gives the same result.
    tol        convergence: a row stops once (KL_t - KL_{t-window}) / KL_t < tol (None: run all `steps`).
    window     steps the relative change is measured over (rejected steps count: a row whose
               proposals fail `window` times in a row has shrunk its angle 2^window-fold).
    precision  "float64" (a float64 copy of the model: steps that do not hinge on rounding) or
               "float32" (the model as loaded).
    """
    if not (isinstance(steps, int) and steps >= 0):
        raise InputError(f"steps={steps!r}: must be a non-negative integer, e.g. 25")
    if not (isinstance(lr, (int, float)) and 0 < lr <= MAX_ANGLE):
        raise InputError(f"lr={lr!r}: the initial step angle must lie in (0, {MAX_ANGLE}] radians, e.g. 0.3")
    if tol is not None and not (isinstance(tol, (int, float)) and tol > 0):
        raise InputError(f"tol={tol!r}: the relative-change tolerance must be a positive number, e.g. 0.01")
    if not (isinstance(window, int) and window >= 1):
        raise InputError(f"window={window!r}: must be a positive integer number of steps, e.g. 5")
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "float64":
        with keep_float64():
            return _ascend(in_float64(model), layer, tokens, radius, restarts, steps, lr, generator, init, tol, window)
    return _ascend(model, layer, tokens, radius, restarts, steps, lr, generator, init, tol, window)


def _ascend(model, layer, tokens, radius, restarts, steps, lr, generator, init, tol, window) -> OptimizedDirections:
    """The ascent itself, in the precision of `model`'s weights."""
    started = time.perf_counter()
    objective = SensitivityObjective(model, layer, tokens, radius)
    n, d = objective.base.shape
    if init is None:
        if not (isinstance(restarts, int) and restarts >= 1):
            raise InputError(f"restarts={restarts!r}: must be a positive integer, e.g. 4")
        init = torch.randn(n, restarts, d, generator=generator)
    elif init.dim() != 3 or init.shape[0] != n or init.shape[-1] != d:
        raise InputError(f"init must be (n, R, d) = ({n}, R, {d}); got {tuple(init.shape)}")
    u = _unit(init.to(objective.base.device, objective.base.dtype))
    start = u.clone()
    kl, grad = _value_and_grad(objective, u)
    initial = kl.clone()
    angle = torch.full_like(kl, float(lr))
    trajectory = [kl.clone()]
    active = torch.ones_like(kl, dtype=torch.bool)  # rows still stepping
    taken = torch.zeros(kl.shape, dtype=torch.long)
    for step in range(1, steps + 1):
        if not bool(active.any()):
            break
        tangent = grad - (grad * u).sum(-1, keepdim=True) * u
        norm = tangent.norm(dim=-1, keepdim=True)
        ascent = torch.where(norm > 0, tangent / norm.clamp_min(1e-30), torch.zeros_like(tangent))
        a = angle[..., None].to(u.dtype)
        proposal = _unit(torch.cos(a) * u + torch.sin(a) * ascent)
        new_kl, new_grad = _value_and_grad(objective, proposal)
        accept = (new_kl > kl) & active  # (n, R); a converged row is frozen
        u = torch.where(accept[..., None], proposal, u)
        grad = torch.where(accept[..., None], new_grad, grad)
        kl = torch.where(accept, new_kl, kl)
        angle = torch.where(active, torch.where(accept, (angle * GROW).clamp_max(MAX_ANGLE), angle * SHRINK), angle)
        taken += active.cpu().long()
        trajectory.append(kl.clone())
        if tol is not None and step >= window:
            active &= ~(_relative_change(trajectory, window) < tol)
    history = torch.stack(trajectory)
    change = _relative_change(trajectory, window, at=taken.to(history.device)) if len(trajectory) > 1 else None
    return OptimizedDirections(directions=u.detach().cpu(), kl=kl.cpu(), initial_kl=initial.cpu(),
                               trajectory=history.cpu(), radius=float(radius), steps=steps,
                               lr=float(lr), seconds=time.perf_counter() - started, init=start.detach().cpu(),
                               steps_taken=taken, converged=(~active).cpu() if tol is not None else
                               torch.zeros_like(taken, dtype=torch.bool),
                               last_relative_change=None if change is None else change.cpu(),
                               tol=None if tol is None else float(tol), window=int(window))


def _relative_change(trajectory, window: int, at: torch.Tensor | None = None) -> torch.Tensor:
    """(KL_t - KL_{t-w}) / KL_t per row, at the last step (or at each row's step `at`), w = min(window, t)."""
    history = torch.stack(trajectory) if isinstance(trajectory, list) else trajectory  # (T + 1, n, R)
    t = torch.full(history.shape[1:], history.shape[0] - 1, dtype=torch.long, device=history.device) \
        if at is None else at.to(history.device)
    back = (t - window).clamp_min(0)
    now = history.gather(0, t[None]).squeeze(0)
    before = history.gather(0, back[None]).squeeze(0)
    return (now - before) / now.clamp_min(1e-30)


def _value_and_grad(objective: SensitivityObjective, u: torch.Tensor):
    """KL (n, R) float64 and its gradient w.r.t. u (n, R, d), one forward + backward."""
    u = u.detach().requires_grad_(True)
    with torch.enable_grad():
        kl = objective(u)
        (grad,) = torch.autograd.grad(kl.sum(), u)
    return kl.detach(), grad.detach()


def _unit(v: torch.Tensor) -> torch.Tensor:
    norm = v.norm(dim=-1, keepdim=True)
    if (norm == 0).any():
        raise InputError("cannot normalise a zero vector to a direction")
    return v / norm
