"""The perturbation engine: perturb the last position at `blocks.{L}.hook_resid_pre`
and read out what changes, computing only what changes.

For each prompt the clean model runs once over all tokens. The prefix keys/values
of blocks L..N-1 are taken from that run; then every perturbed activation of every
prompt goes through blocks L..N-1 *for the last position only*, all rows batched.
The clean last position runs through the same path as row 0 of each prompt, so a
zero perturbation reads out exactly zero change.

Public entry points:
    sweep(model, layer, tokens, directions, radii)  # x + r*u
    sweep_points(model, layer, tokens, points)      # arbitrary replacement activations
    sweep_naive(...)                                # one full forward per row (the reference)
    sweep_naive_frozen(...)                         # the same with the MLPs frozen (hooks on HF's modules)

`freeze_mlp=True` (sweep, sweep_points) freezes every later block's MLP nonlinearity at the
clean row's values, so each MLP is linear in the perturbation (claim C5's causal test):
gated MLPs keep the clean act(gate(x)); GPT-2's GELU is replaced by its tangent at the clean
pre-activation (architectures._frozen_activation). Fast stacks only.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from .errors import InputError
from .sites import check_layer, site_name
from .stack_base import Prefix
from .vocab_readout import cross_entropies

DEFAULT_BATCH_ROWS = 1024


@dataclass(frozen=True)
class SweepResult:
    """Read-outs at the perturbed position. Shapes lead with (n, *grid).

    kl            KL(clean || perturbed) of the next-token distribution, nats.
    resid_l2      L2 change of the residual stream after each block L..N-1, (..., N - L).
    final_l2      the same after the last block, before the final norm.
    top1_changed  whether the argmax next token changed.
    mlp_flips     per block L..N-1, number of MLP units whose gate (SiLU-gated) or
                  pre-activation (GELU/ReLU) sign differs from clean; None unless asked.
    clean_margin  (n,) clean top-1 minus top-2 logit (for Story 0, claim C6).
    response_l2   the blocks' response after each block L..N-1, ||Δh_l - (x' - x)||: the change
                  the blocks added, without the perturbation the skip path carries unchanged
                  (for a direction sweep x' - x = r u; claims.md, "The blocks' response").
    """

    layer: int
    site: str
    kl: torch.Tensor
    resid_l2: torch.Tensor
    final_l2: torch.Tensor
    top1_changed: torch.Tensor
    mlp_flips: torch.Tensor | None
    clean_margin: torch.Tensor
    radii: torch.Tensor | None = None
    response_l2: torch.Tensor | None = None
    clean_final_norm: torch.Tensor | None = None  # (n,) ||h|| of the clean row after the last block (pre-norm)
    clean_entropy: torch.Tensor | None = None  # (n,) entropy of the clean row's next-token distribution, nats
    normed_final_l2: torch.Tensor | None = None  # L2 change of the final residual AFTER the final norm
    # (Janiak et al.'s read-out, C12: the norm removes the skip term's growth that dominates final_l2)

    @property
    def n(self) -> int:
        return self.kl.shape[0]


# The read-outs with one value per perturbed row (n, *grid, ...); the rest are per prompt or per run.
ROW_READOUTS = ("kl", "resid_l2", "final_l2", "top1_changed", "mlp_flips", "response_l2", "normed_final_l2")
PROMPT_READOUTS = ("clean_margin", "clean_final_norm", "clean_entropy")  # (n,): one per prompt


def _chunking(points_per_prompt: int, batch_rows: int) -> tuple[int, int]:
    """-> (rows per prompt in one forward, prompts per chunk): how `_run` packs rows into forwards."""
    per_prompt = max(1, min(points_per_prompt, batch_rows - 1))
    return per_prompt, max(1, batch_rows // (per_prompt + 1))


def chunk_start(done: int, points_per_prompt: int, batch_rows: int = DEFAULT_BATCH_ROWS) -> int:
    """The first prompt of the chunk that holds prompt `done`, in a sweep with this many points per prompt.

    A sweep grown from `done` prompts restarts there: every chunk then holds the prompts it holds in
    one sweep of them all, so the grown rows are bitwise that sweep's (a forward's rounding depends
    on how many rows it carries)."""
    per_chunk = _chunking(points_per_prompt, batch_rows)[1]
    return done // per_chunk * per_chunk


def first_prompts(result: SweepResult, n: int) -> SweepResult:
    """The read-outs of the first n prompts only (a sequential look at n base prompts)."""
    return replace(result, **{name: None if getattr(result, name) is None else getattr(result, name)[:n]
                              for name in ROW_READOUTS + PROMPT_READOUTS})


def join_prompts(a: SweepResult, b: SweepResult) -> SweepResult:
    """The read-outs of a's prompts followed by b's (the same grid): a sweep grown by more prompts.

    A row depends only on its own prompt and point and on the chunk it was forwarded in, so
    prompts 0..m joined with prompts m..n swept again from `chunk_start(m, ...)` are one sweep of 0..n."""
    def join(name):
        x, y = getattr(a, name), getattr(b, name)
        return None if x is None else torch.cat([x, y], dim=0)

    return replace(a, **{name: join(name) for name in ROW_READOUTS + PROMPT_READOUTS})


def grow_prompts(kept: SweepResult | None, n: int, points_per_prompt: int, sweep_rows) -> SweepResult:
    """The sweep of the first n prompts, given `kept`, the same sweep of fewer (None: none yet).

    sweep_rows(rows) sweeps the prompts `rows`; only those from the chunk holding kept's first
    missing prompt on are swept again, so the result is bitwise one sweep of all n."""
    start = 0 if kept is None else chunk_start(kept.n, points_per_prompt)
    swept = sweep_rows(slice(start, n))
    return join_prompts(first_prompts(kept, start), swept) if start else swept


def sweep(model, layer: int, tokens: torch.Tensor, directions: torch.Tensor, radii, *,
          track_mlp: bool = False, batch_rows: int = DEFAULT_BATCH_ROWS,
          progress: Callable[[int], None] | None = None, freeze_mlp: bool = False) -> SweepResult:
    """Perturb each prompt's last-position activation x to x + r*u for every radius r.

    tokens      LongTensor (n, T); the last position is perturbed.
    directions  (n, d) or (n, K, d) unit vectors (K directions per prompt).
    radii       (S,) absolute residual-norm units.
    Returns read-outs of shape (n, S) or (n, K, S).
    freeze_mlp  freeze each later block's MLP nonlinearity at the clean base's values (module docstring).
    """
    tokens = _check_tokens(model, tokens)
    layer = check_layer(layer, model.n_layers, model.name)
    directions = _as_float(directions, "directions")
    single = directions.dim() == 2
    if single:
        directions = directions[:, None]
    if directions.dim() != 3 or directions.shape[0] != tokens.shape[0] or directions.shape[-1] != model.d_model:
        raise InputError(
            f"directions must be (n, d) or (n, K, d) with n={tokens.shape[0]}, d={model.d_model}; "
            f"got {tuple(directions.shape)}"
        )
    norms = directions.norm(dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        raise InputError(f"directions must have unit norm; norms range {norms.min():.4g}..{norms.max():.4g}")
    radii = _as_float(torch.as_tensor(radii), "radii")
    if radii.dim() != 1 or len(radii) == 0:
        raise InputError(f"radii must be a non-empty 1-D tensor; got shape {tuple(radii.shape)}")
    directions, radii_on_device = directions.to(model.device), radii.to(model.device)

    def build_points(base):  # base: (n, d) -> (n, K*S, d)
        pts = base[:, None, None, :] + radii_on_device[None, None, :, None] * directions[:, :, None, :]
        return pts.flatten(1, 2)

    result = _run(model, layer, tokens, build_points, track_mlp, batch_rows, progress, freeze_mlp=freeze_mlp)
    K, S = directions.shape[1], len(radii)
    result = reshape_result(result, (K, S))
    if single:
        result = reshape_result(result, (S,), squeeze_k=True)
    return SweepResult(**{**result.__dict__, "radii": radii})


def sweep_points(model, layer: int, tokens: torch.Tensor, points: torch.Tensor | Callable, *,
                 reference: torch.Tensor | None = None, track_mlp: bool = False, batch_rows: int = DEFAULT_BATCH_ROWS,
                 progress: Callable[[int], None] | None = None, freeze_mlp: bool = False) -> SweepResult:
    """Replace the last-position activation at the site by each of `points` (n, M, d).

    `points` may also be a function of the clean activations (n, d) -> (n, M, d),
    for paths like x + t (b - x) that start at the clean activation.
    `reference` (n, d) replaces the clean activation as the point every read-out is
    compared with, e.g. a Gaussian base g when the points are g + r*u.
    A callable sees the clean activations on the CPU, wherever the model runs.
    freeze_mlp freezes the MLPs at the reference's values (the clean ones without a reference).
    """
    tokens = _check_tokens(model, tokens)
    layer = check_layer(layer, model.n_layers, model.name)
    if not callable(points):
        fixed = _as_float(points, "points")
        if fixed.dim() != 3 or fixed.shape[0] != tokens.shape[0] or fixed.shape[-1] != model.d_model:
            raise InputError(f"points must be (n, M, d) with n={tokens.shape[0]}, d={model.d_model}; got {tuple(fixed.shape)}")
        points = lambda base: fixed  # noqa: E731
    else:
        path = points
        points = lambda base: torch.as_tensor(path(base.cpu()))  # noqa: E731
    if reference is not None:
        reference = _as_float(reference, "reference")
        if reference.shape != (tokens.shape[0], model.d_model):
            raise InputError(f"reference must be (n, d) = ({tokens.shape[0]}, {model.d_model}); got {tuple(reference.shape)}")
        reference = reference.to(model.device)
    return _run(model, layer, tokens, points, track_mlp, batch_rows, progress, reference, freeze_mlp=freeze_mlp)


@torch.no_grad()
def _run(model, layer, tokens, build_points, track_mlp, batch_rows, progress, reference=None, *,
         freeze_mlp: bool = False) -> SweepResult:
    stack = model.stack
    if freeze_mlp and stack.path != "fast":
        raise InputError(f"{model.name}: the frozen-MLP mode (freeze_mlp=True) needs a fast stack "
                         f"({stack.arch} runs the generic engine path)")
    hidden = clean_hidden_states(model, tokens)
    # (n, d): the activation every row is compared with; by default the clean one
    base = hidden[layer][:, -1] if reference is None else reference
    points = build_points(base).to(base.device)
    if points.dim() != 3 or points.shape[:1] != base.shape[:1] or points.shape[-1] != base.shape[-1]:
        raise InputError(f"point builder returned shape {tuple(points.shape)}, expected (n, M, d)")
    if not torch.isfinite(points).all():
        raise InputError("perturbed activations contain NaN or inf; check directions and radii")
    n, M, _ = points.shape
    per_prompt, prompts_per_chunk = _chunking(M, batch_rows)
    outs = {k: [] for k in ("kl", "resid_l2", "response_l2", "top1", "flips", "normed_l2")}
    margins, final_norms, entropies = [], [], []
    for p0 in range(0, n, prompts_per_chunk):
        p1 = min(n, p0 + prompts_per_chunk)
        prefix = stack.build_prefix(tuple(h[p0:p1] for h in hidden), layer, tokens=tokens[p0:p1])
        row_parts = {k: [] for k in outs}
        for m0 in range(0, M, per_prompt):
            m1 = min(M, m0 + per_prompt)
            # row 0 of every prompt is the clean activation, through the same code path
            h = torch.cat([base[p0:p1, None], points[p0:p1, m0:m1]], dim=1)
            # progress advances block by block: a chunk can hold most of a sweep's rows
            share = (p1 - p0) * (m1 - m0) / (stack.n_layers - layer + 1)
            chunk = _forward_rows(stack, layer, h, prefix, track_mlp, freeze_mlp,
                                  on_block=None if progress is None else (lambda: progress(share)))
            for k in row_parts:
                if chunk[k] is not None:
                    row_parts[k].append(chunk[k])
            if m0 == 0:
                margins.append(chunk["margin"])
                final_norms.append(chunk["final_norm"])
                entropies.append(chunk["entropy"])
            if progress is not None:
                progress(share)  # the read-outs
        for k in outs:
            if row_parts[k]:
                outs[k].append(torch.cat(row_parts[k], dim=1))
    resid_l2 = torch.cat(outs["resid_l2"]).cpu()
    return SweepResult(
        layer=layer,
        site=site_name(layer),
        kl=torch.cat(outs["kl"]).cpu(),
        resid_l2=resid_l2,
        final_l2=resid_l2[..., -1],
        top1_changed=torch.cat(outs["top1"]).cpu(),
        mlp_flips=torch.cat(outs["flips"]).cpu() if track_mlp else None,
        clean_margin=torch.cat(margins).cpu(),
        response_l2=torch.cat(outs["response_l2"]).cpu(),
        clean_final_norm=torch.cat(final_norms).cpu(),
        clean_entropy=torch.cat(entropies).cpu(),
        normed_final_l2=torch.cat(outs["normed_l2"]).cpu(),
    )


def _forward_rows(stack, layer: int, h: torch.Tensor, prefix: Prefix, track_mlp: bool,
                  freeze_mlp: bool = False, on_block=None) -> dict:
    """Blocks layer..N-1 for rows h (n, 1 + m, d); row 0 is clean. Read-outs for rows 1..m.

    freeze_mlp: every block's MLP nonlinearity frozen at row 0's values (the clean row is in the batch).
    """
    l2, response, flips = [], [], []
    injected = h[:, 1:] - h[:, :1]  # (n, m, d): what the skip path carries to every later block
    for l in range(layer, stack.n_layers):
        h, pre = stack.block(l, h, prefix, freeze_mlp=True) if freeze_mlp else stack.block(l, h, prefix)
        change = h[:, 1:] - h[:, :1]
        l2.append(change.norm(dim=-1))
        response.append((change - injected).norm(dim=-1))
        if track_mlp and pre is None:
            raise InputError(f"{stack.arch}: no MLP activation module found in block {l}; "
                             f"MLP sign flips cannot be counted on this model")
        if track_mlp:
            flips.append(((pre[:, 1:] > 0) != (pre[:, :1] > 0)).sum(-1, dtype=torch.int32))
        if on_block is not None:
            on_block()
    normed = stack.final_normed(h)
    logits = stack.logits_from_normed(normed)  # one final norm serves both read-outs
    # KL(clean || row) = c_clean - c_row, c_row = sum_v p log q_row in float64, every row through the same
    # kernel, so a row equal to the clean one has KL exactly 0 (vocab_readout: fused on the CPU)
    cross = cross_entropies(logits)  # (n, 1 + m)
    kl = (cross[:, :1] - cross[:, 1:]).clamp_min(0.0).float()
    top2 = logits[:, 0].topk(2, dim=-1).values
    return {
        "kl": kl,
        "resid_l2": torch.stack(l2, dim=-1),
        "response_l2": torch.stack(response, dim=-1),
        "top1": logits[:, 1:].argmax(-1) != logits[:, :1].argmax(-1),
        "flips": torch.stack(flips, dim=-1) if track_mlp else None,
        "margin": top2[:, 0] - top2[:, 1],
        "final_norm": h[:, 0].norm(dim=-1),
        "entropy": -cross[:, 0].float(),
        "normed_l2": (normed[:, 1:] - normed[:, :1]).norm(dim=-1),
    }


def reshape_result(result: SweepResult, grid: tuple, squeeze_k: bool = False) -> SweepResult:
    """Read-outs (n, K*S, ...) -> (n, K, S, ...) (or drop a K of 1 with squeeze_k)."""
    def shape(t):
        if t is None:
            return None
        if squeeze_k:
            return t.squeeze(1)
        return t.unflatten(1, grid)

    return replace(result, **{name: shape(getattr(result, name)) for name in ROW_READOUTS})


class _StopForward(Exception):
    """Raised by a hook to end a forward once what it needs has been read."""


@torch.no_grad()
def clean_hidden_states(model, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Residual stream entering each block, all positions: hidden[l] is (n, T, d), on the model's device.

    Kept per model for the last few token batches (`CleanStates`): a run sweeps the same base
    prompts at every site, for every kind, extension and claim, and each sweep needs their clean
    forward. Callers must not write into the returned tensors.
    """
    tokens = _check_tokens(model, tokens)
    return model.clean_states.get(tokens, lambda: _clean_forward(model, tokens))


class CleanStates:
    """The clean forward's hidden states of a model's most recent token batches: at most `keep` of
    them and, beyond the newest, at most `max_bytes` (128 SmolLM2 prompts of 10 tokens take 88 MB).

    Keyed by the exact token ids, shape included, so a hit hands back the very tensors one forward
    of that batch gave: a sweep reads bitwise what it read when every sweep ran its own forward.
    """

    def __init__(self, keep: int = 4, max_bytes: int = 2**30):
        self.keep, self.max_bytes = keep, max_bytes
        self._states: dict = {}  # key -> hidden states, oldest first

    def get(self, tokens: torch.Tensor, compute: Callable[[], tuple]) -> tuple[torch.Tensor, ...]:
        key = (tuple(tokens.shape), tokens.cpu().numpy().tobytes())
        states = self._states.pop(key, None)
        if states is None:
            states = compute()
        self._states[key] = states  # now the most recent
        while len(self._states) > self.keep or (len(self._states) > 1 and self.nbytes > self.max_bytes):
            self._states.pop(next(iter(self._states)))
        return states

    @property
    def nbytes(self) -> int:
        return sum(t.nelement() * t.element_size() for states in self._states.values() for t in states)


def _clean_forward(model, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every block's input, all positions, from one forward of the whole batch, kept on the model's
    device; it stops at the last block's input (that block, the final norm and the unembedding of
    every position are not needed)."""
    every = _block_inputs(model, range(model.n_layers), tokens, tokens.shape[0], slice(None), to_cpu=False)
    return tuple(every[layer] for layer in range(model.n_layers))


@torch.no_grad()
def resid_pre(model, layer: int, tokens: torch.Tensor, *, batch_prompts: int = 256) -> torch.Tensor:
    """`blocks.{layer}.hook_resid_pre` for all positions, (n, T, d), by a partial forward.

    The forward stops as soon as block `layer` receives its input, so harvesting
    activations at an early site costs a fraction of a full forward. Returned on the CPU.
    """
    return _block_inputs(model, [layer], tokens, batch_prompts, slice(None))[layer]


@torch.no_grad()
def last_position_resid(model, layers, tokens: torch.Tensor, *, batch_prompts: int = 256) -> dict[int, torch.Tensor]:
    """`blocks.{l}.hook_resid_pre` at the last position for every l in `layers`: {l: (n, d)} on the CPU.

    One partial forward per batch, stopped at the deepest layer, reads them all: fitting five sites
    costs the deepest one's forward, not the sum of five. Each is bitwise `resid_pre(model, l,
    tokens)[:, -1]` (the same batches, the same computation up to block l).
    """
    return _block_inputs(model, layers, tokens, batch_prompts, -1)


def _block_inputs(model, layers, tokens, batch_prompts: int, position, *, to_cpu: bool = True) -> dict[int, torch.Tensor]:
    """What blocks `layers` receive, at `position`: one forward per batch of prompts, stopped at the deepest.

    Read with pre-hooks on the decoder layers rather than `output_hidden_states`: that is the
    definition of hook_resid_pre, and some wrapped models (OPT under the bridge) report extra or
    shifted hidden states.
    """
    tokens = _check_tokens(model, tokens)
    layers = sorted({check_layer(layer, model.n_layers, model.name) for layer in layers})
    if not layers:
        raise InputError("reading block inputs needs at least one layer")
    blocks = _hf_blocks(model.hf_model)
    captured = {layer: [] for layer in layers}

    def grab(layer):
        def hook(module, args, kwargs):
            read = (args[0] if args else kwargs["hidden_states"])[:, position]
            captured[layer].append(read.cpu() if to_cpu else read)
            if layer == layers[-1]:
                raise _StopForward
        return hook

    handles = [blocks[layer].register_forward_pre_hook(grab(layer), with_kwargs=True) for layer in layers]
    try:
        for i in range(0, tokens.shape[0], batch_prompts):
            try:
                model.hf_model(tokens[i : i + batch_prompts], use_cache=False)
            except _StopForward:
                pass
    finally:
        for handle in handles:
            handle.remove()
    batches = -(-tokens.shape[0] // batch_prompts)
    seen = {layer: len(parts) for layer, parts in captured.items() if len(parts) != batches}
    if seen:
        raise InputError(f"{model.name}: expected each decoder layer's input once per forward ({batches}); "
                         f"hooks saw {seen} (layer: times)")
    return {layer: torch.cat(parts) for layer, parts in captured.items()}


def _hf_blocks(hf_model):
    from .stack_base import decoder_layers

    cfg = hf_model.config
    return decoder_layers(hf_model, int(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer")))


def sweep_naive(model, layer: int, tokens: torch.Tensor, points: torch.Tensor) -> SweepResult:
    """Reference: one full TransformerLens forward per perturbed row, as published code does.

    The replacement goes in through the bridge hook `blocks.{L}.hook_resid_pre`; the
    later residual streams are read through `blocks.{l}.hook_resid_post`. No caching,
    no batching: slow and obviously right.
    """
    tokens = _check_tokens(model, tokens)
    layer = check_layer(layer, model.n_layers, model.name)
    bridge = model.bridge
    points = torch.as_tensor(points).to(model.device)
    n, M, _ = points.shape
    later = [f"blocks.{l}.hook_resid_post" for l in range(layer, model.n_layers)]
    clean_site = {}

    def run(prompt, replacement):
        cache = {}

        def write(act, hook):
            clean_site["x"] = act[0, -1].clone()
            if replacement is not None:
                act = act.clone()
                act[:, -1] = replacement
            return act

        def reader(name):
            def read(act, hook):
                cache[name] = act[0, -1].clone()
                return act

            return read

        hooks = [(site_name(layer), write)] + [(name, reader(name)) for name in later]
        with torch.no_grad():
            logits = bridge.run_with_hooks(prompt, fwd_hooks=hooks)[0, -1]
        return logits, torch.stack([cache[name] for name in later])

    kl = torch.zeros(n, M)
    resid = torch.zeros(n, M, len(later))
    response = torch.zeros(n, M, len(later))
    top1 = torch.zeros(n, M, dtype=torch.bool)
    normed_l2 = torch.zeros(n, M)
    margin, entropy = torch.zeros(n), torch.zeros(n)
    final_normed = model.stack.final_normed  # the norm's own few lines; the residual it reads is the bridge's
    for i in range(n):
        prompt = tokens[i : i + 1]
        clean_logits, clean_resid = run(prompt, None)
        clean_logp = torch.log_softmax(clean_logits.double(), -1)
        top2 = clean_logits.topk(2).values
        margin[i] = (top2[0] - top2[1]).cpu()
        entropy[i] = -(clean_logp.exp() * clean_logp).sum().float().cpu()
        for j in range(M):
            logits, res = run(prompt, points[i, j])
            logp = torch.log_softmax(logits.double(), -1)
            kl[i, j] = (clean_logp.exp() * (clean_logp - logp)).sum().clamp_min(0.0).cpu()
            resid[i, j] = (res - clean_resid).norm(dim=-1).cpu()
            injected = points[i, j] - clean_site["x"]
            response[i, j] = (res - clean_resid - injected).norm(dim=-1).cpu()
            normed_l2[i, j] = (final_normed(res[-1]) - final_normed(clean_resid[-1])).norm().cpu()
            top1[i, j] = (logits.argmax() != clean_logits.argmax()).cpu()
    return SweepResult(layer=layer, site=site_name(layer), kl=kl, resid_l2=resid, final_l2=resid[..., -1],
                       top1_changed=top1, mlp_flips=None, clean_margin=margin, response_l2=response,
                       clean_entropy=entropy, normed_final_l2=normed_l2)


@torch.no_grad()
def sweep_naive_frozen(model, layer: int, tokens: torch.Tensor, points: torch.Tensor) -> SweepResult:
    """Reference for `freeze_mlp=True`: one full HF forward per row, the MLPs frozen by forward hooks.

    The clean run of each prompt records, at the last position, the input and output of every
    later block's MLP activation module; each perturbed run (the replacement written by a pre-hook
    on decoder layer L) has that module's last-position output replaced: by the clean output for a
    gated MLP, by the clean output plus act'(p_clean) * (p - p_clean) for GPT-2's GELU (act' by
    reverse-mode autograd, not the engine's forward mode). Read-outs: kl, top1_changed, clean_margin,
    resid_l2 (after each block L..N-1, from the decoder layers' outputs).
    """
    from .stack_base import _activation_module

    tokens = _check_tokens(model, tokens)
    layer = check_layer(layer, model.n_layers, model.name)
    gated = getattr(model.stack, "mlp_gated", None)
    if gated is None:
        raise InputError(f"{model.name}: the frozen-MLP reference needs a fast stack (gated or GELU MLP known)")
    blocks = _hf_blocks(model.hf_model)
    acts = {l: _activation_module(blocks[l]) for l in range(layer, model.n_layers)}
    points = torch.as_tensor(points).float().to(model.device)
    n, M, _ = points.shape
    state = {"clean": None, "replacement": None}

    def write(module, args, kwargs):
        if state["replacement"] is None:
            return None
        if args:
            x = args[0].clone()
            x[:, -1] = state["replacement"]
            return (x, *args[1:]), kwargs
        x = kwargs["hidden_states"].clone()
        x[:, -1] = state["replacement"]
        return args, {**kwargs, "hidden_states": x}

    def freeze(l):
        def hook(module, args, output):
            p = args[0][:, -1]
            if state["clean"] is not None:  # recording the clean run
                state["clean"][l] = (p.clone(), output[:, -1].clone())
                return output
            p_clean, out_clean = state["frozen"][l]
            out = output.clone()
            if gated:
                out[:, -1] = out_clean
            else:
                with torch.enable_grad():
                    at = p_clean.detach().requires_grad_(True)
                    slope = torch.autograd.grad(module.forward(at).sum(), at)[0]  # forward: not this hook again
                out[:, -1] = out_clean + slope * (p - p_clean)
            return out
        return hook

    resid = {}

    def reader(l):
        def hook(module, args, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            resid[l] = out[0, -1].clone()
        return hook

    handles = [blocks[layer].register_forward_pre_hook(write, with_kwargs=True)]
    handles += [acts[l].register_forward_hook(freeze(l)) for l in acts]
    handles += [blocks[l].register_forward_hook(reader(l)) for l in acts]
    kl = torch.zeros(n, M)
    resid_l2 = torch.zeros(n, M, len(acts))
    top1 = torch.zeros(n, M, dtype=torch.bool)
    margin = torch.zeros(n)
    try:
        for i in range(n):
            prompt = tokens[i : i + 1]
            state.update(clean={}, replacement=None)
            clean_logits = model.hf_model(prompt, use_cache=False).logits[0, -1]
            clean_resid = torch.stack([resid[l] for l in acts])
            state.update(frozen=state["clean"], clean=None)
            clean_logp = torch.log_softmax(clean_logits.double(), -1)
            top2 = clean_logits.topk(2).values
            margin[i] = (top2[0] - top2[1]).cpu()
            for j in range(M):
                state["replacement"] = points[i, j]
                logits = model.hf_model(prompt, use_cache=False).logits[0, -1]
                logp = torch.log_softmax(logits.double(), -1)
                kl[i, j] = (clean_logp.exp() * (clean_logp - logp)).sum().clamp_min(0.0).cpu()
                resid_l2[i, j] = (torch.stack([resid[l] for l in acts]) - clean_resid).norm(dim=-1).cpu()
                top1[i, j] = (logits.argmax() != clean_logits.argmax()).cpu()
    finally:
        for handle in handles:
            handle.remove()
    return SweepResult(layer=layer, site=site_name(layer), kl=kl, resid_l2=resid_l2, final_l2=resid_l2[..., -1],
                       top1_changed=top1, mlp_flips=None, clean_margin=margin)


def _check_tokens(model, tokens) -> torch.Tensor:
    if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.int64, torch.int32):
        raise InputError(f"tokens must be a LongTensor (n, T); got {type(tokens).__name__}"
                         f"{'' if not isinstance(tokens, torch.Tensor) else ' of ' + str(tokens.dtype)}")
    if tokens.dim() != 2 or tokens.shape[1] < 2 or tokens.shape[0] < 1:
        raise InputError(f"tokens must be (n, T) with n >= 1 and T >= 2; got {tuple(tokens.shape)}")
    vocab = model.stack.unembed.shape[0]
    if int(tokens.min()) < 0 or int(tokens.max()) >= vocab:
        raise InputError(f"token ids must lie in [0, {vocab}); got {int(tokens.min())}..{int(tokens.max())}")
    return tokens.long().to(model.device)


def _as_float(t, what: str) -> torch.Tensor:
    t = torch.as_tensor(t)
    if not t.is_floating_point():
        t = t.float()
    t = t.float()
    if not torch.isfinite(t).all():
        raise InputError(f"{what} contain NaN or inf")
    return t
