"""Training claim C10's default SAEs: harvesting real activations, TopK / ReLU training,
held-out evaluation, and the cache of default SAEs keyed by model fingerprint.

    sae, report = train_sae(model, 1, k=16)   # harvested at blocks.1.hook_resid_pre
    sae = default_sae(model, 1, l0_target=16) # trained once, cached by model fingerprint

Apart from `sae.py` (the format) because only the default SAEs need it: a user's `--sae`
loads without it. The cache key is the directory name (`default_sae_dir`): model, layer, k,
d_sae, token budget, model fingerprint and FORMAT_VERSION; a change to any other training
setting needs a new FORMAT_VERSION.

Default training (why TopK): TopK fixes L0 exactly, so the two L0s C10(b) compares are
stated in advance rather than reached by tuning an L1 coefficient; it has no L1
shrinkage and trains well on a short budget (Gao et al. 2024). ReLU + L1 is available
with `l1_coefficient=`.
"""
from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .cache import build_lock
from .directions import unit
from .errors import InputError, ModelLoadError
from .progress import progress_bar
from .sae import CFG_FILENAME, SAE, load_sae, lock_of, save_sae

DEFAULT_L0S = (8, 16, 64)  # C10(b): the L0s of the default TopK SAEs, compared lowest vs highest
C10A_L0 = 16  # C10(a): the default SAE whose codes make the synthetic bases
DEFAULT_EXPANSION = 4  # d_sae = 4 * d_model
DEFAULT_TOKENS = 500_000  # training activations seen (with repetition over the harvested pool)
DEFAULT_BATCH = 2048
DEFAULT_LR = 1e-3
HARVEST_WINDOW = 64  # tokens per harvested window
HELDOUT_EVERY = 10  # every 10th document is held out (dead fraction, FVE, downstream KL)
SINK_NORM_FACTOR = 4.0  # harvested positions with norm > 4 x median are dropped as attention-sink-like
# The default training corpus: the Lee corpus alone, a pinned sha256-checked asset. Version 1 also
# harvested CPython's pydoc_data.topics, whose text changes with the Python release, so the same
# seed trained different SAEs on different hosts (C10 moved; every other cell reproduced).
HARVEST_CORPORA = ("lee",)
FORMAT_VERSION = 2  # 2: lee only (see HARVEST_CORPORA); 1: lee + pydoc


@dataclass(frozen=True)
class Harvest:
    """Real activations at `blocks.{layer}.hook_resid_pre`, all positions but the first."""

    train: torch.Tensor  # (N, d) float32
    heldout: torch.Tensor  # (M, d) float32
    heldout_prompts: torch.Tensor  # (P, 10) token windows of held-out documents, for the downstream KL
    dropped_first: int  # position-0 activations left out
    dropped_sink: int  # other positions left out for norm > SINK_NORM_FACTOR x median
    seconds: float
    corpus_sha256: str = ""  # of the documents harvested (prompts._hash_documents)


def harvest(model, layer: int, documents: Sequence[str] | None = None, *, window: int = HARVEST_WINDOW,
            max_windows: int | None = None, kl_prompts: int = 256, prompt_length: int = 10, seed: int = 0) -> Harvest:
    """Every position of non-overlapping `window`-token windows of real text (HARVEST_CORPORA by default).

    Position 0 is always dropped (the attention sink: no context, often an extreme norm, and
    never a base position of the claims); so is any position whose norm exceeds
    SINK_NORM_FACTOR x the median. Documents are split, every HELDOUT_EVERY-th held out.
    """
    from .engine import resid_pre

    started = time.perf_counter()
    if documents is None:
        from .prompts import load_corpus

        documents = tuple(doc for name in HARVEST_CORPORA for doc in load_corpus(name).documents)
    bos = getattr(model.tokenizer, "bos_token_id", None) if model.prepend_bos else None
    body = window - int(bos is not None)
    train_rows, held_rows, prompt_rows = [], [], []
    for i, doc in enumerate(documents):
        ids = model.tokenizer(doc, add_special_tokens=False)["input_ids"]
        rows = [([bos] if bos is not None else []) + ids[o:o + body] for o in range(0, len(ids) - body + 1, body)]
        held = i % HELDOUT_EVERY == HELDOUT_EVERY - 1
        (held_rows if held else train_rows).extend(rows)
        if held:
            short = prompt_length - int(bos is not None)
            prompt_rows += [([bos] if bos is not None else []) + ids[o:o + short]
                            for o in range(0, len(ids) - short + 1, short)]
    if len(train_rows) < 2 or not held_rows or not prompt_rows:
        raise InputError(f"SAE training corpus too short: {len(train_rows)} training and {len(held_rows)} held-out "
                         f"windows of {window} tokens")
    rng = torch.Generator().manual_seed(seed)
    if max_windows is not None and len(train_rows) > max_windows:
        keep = torch.randperm(len(train_rows), generator=rng)[:max_windows].sort().values
        train_rows = [train_rows[j] for j in keep]
    acts = {}
    for name, rows in (("train", train_rows), ("heldout", held_rows)):
        a = resid_pre(model, layer, torch.tensor(rows, dtype=torch.long), batch_prompts=64)[:, 1:]  # drop position 0
        acts[name] = a.reshape(-1, a.shape[-1]).float()
    limit = SINK_NORM_FACTOR * float(acts["train"].norm(dim=-1).median())
    dropped = 0
    for name in acts:
        keep = acts[name].norm(dim=-1) <= limit
        dropped += int((~keep).sum())
        acts[name] = acts[name][keep]
    pick = torch.randperm(len(prompt_rows), generator=rng)[:kl_prompts]
    prompts = torch.tensor([prompt_rows[j] for j in pick.tolist()], dtype=torch.long)
    return Harvest(train=acts["train"], heldout=acts["heldout"], heldout_prompts=prompts,
                   dropped_first=len(train_rows) + len(held_rows), dropped_sink=dropped,
                   seconds=time.perf_counter() - started, corpus_sha256=_documents_sha256(documents))


def _documents_sha256(documents: Sequence[str]) -> str:
    from .prompts import _hash_documents

    return _hash_documents(tuple(documents))


@dataclass(frozen=True)
class TrainingReport:
    """How well an SAE reconstructs held-out activations, and what splicing it in costs downstream."""

    architecture: str
    k: int | None
    l1_coefficient: float | None
    d_in: int
    d_sae: int
    hook_name: str
    tokens_seen: int
    steps: int
    train_seconds: float
    harvest_seconds: float
    n_train: int
    n_heldout: int
    dropped_first_positions: int
    dropped_sink_positions: int
    scale_factor: float  # inputs were multiplied by this during training (folded into the saved weights)
    l0: float  # mean active latents per held-out activation
    fve: float  # fraction of variance explained on held-out activations
    dead_fraction: float  # latents never active on the held-out set
    kl_recon_mean: float  # KL(clean || reconstruction spliced in at the last position), nats
    kl_recon_median: float
    kl_random_same_error_mean: float  # the same for a random point at the reconstruction's error distance
    n_kl_prompts: int
    seed: int
    corpus_sha256: str = ""  # of the harvested documents: the training data, whatever the host
    torch_threads: int = 0  # torch.get_num_threads() while training (the weights do not depend on it)

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        size = f"k={self.k}" if self.k else f"l1={self.l1_coefficient:g}"
        return (f"{self.architecture} {size} d_sae={self.d_sae}: L0 {self.l0:.1f}, FVE {self.fve:.3f}, "
                f"dead {self.dead_fraction:.1%}, KL(recon) mean {self.kl_recon_mean:.3g} / median "
                f"{self.kl_recon_median:.3g} nats (random point at the same error: {self.kl_random_same_error_mean:.3g}), "
                f"trained {self.train_seconds:.0f} s on {self.tokens_seen:,} activations")


def train_sae(model, layer: int, *, d_sae: int | None = None, k: int | None = None, l1_coefficient: float | None = None,
              tokens_budget: int = DEFAULT_TOKENS, batch_size: int = DEFAULT_BATCH, lr: float = DEFAULT_LR,
              seed: int = 0, progress: bool = True, data: Harvest | None = None,
              documents: Sequence[str] | None = None) -> tuple[SAE, TrainingReport]:
    """Train a TopK (give k) or ReLU + L1 (give l1_coefficient) SAE at `blocks.{layer}.hook_resid_pre`.

    Inputs are scaled by s = sqrt(d_in) / mean ||x|| (mean squared norm ~ d_in, SAELens'
    "expected average" convention) and the scale is folded into the returned weights, so
    the SAE works on raw activations. Adam, decoder rows renormalised to unit norm after
    each step, W_enc initialised as W_dec.T and b_dec as the mean; the learning rate decays
    linearly to 0 over the last 20% of steps.
    """
    from .sites import check_layer, site_name

    layer = check_layer(layer, model.n_layers, model.name)
    if (k is None) == (l1_coefficient is None):
        raise InputError("train_sae: give exactly one of k (TopK) or l1_coefficient (ReLU + L1)")
    d_sae = d_sae or DEFAULT_EXPANSION * model.d_model
    if k is not None and not (isinstance(k, int) and 1 <= k <= d_sae):
        raise InputError(f"train_sae: k={k!r} must be an integer in [1, d_sae={d_sae}]")
    if l1_coefficient is not None and not l1_coefficient > 0:
        raise InputError(f"train_sae: l1_coefficient={l1_coefficient!r} must be positive")
    if tokens_budget < batch_size:
        raise InputError(f"train_sae: tokens_budget={tokens_budget} is below one batch ({batch_size})")
    data = data or harvest(model, layer, documents, seed=seed)
    x_all = data.train
    d_in = x_all.shape[1]
    scale = math.sqrt(d_in) / float(x_all.norm(dim=-1).mean())
    gen = torch.Generator().manual_seed(seed)
    torch_state = torch.random.get_rng_state()
    W_dec = torch.nn.Parameter(unit(torch.randn(d_sae, d_in, generator=gen)))
    W_enc = torch.nn.Parameter(W_dec.detach().T.clone())
    b_enc = torch.nn.Parameter(torch.zeros(d_sae))
    b_dec = torch.nn.Parameter((x_all.mean(0) * scale).clone())
    params = [W_enc, b_enc, W_dec, b_dec]
    steps = tokens_budget // batch_size
    optimiser = torch.optim.Adam(params, lr=lr)
    decay_from = int(0.8 * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: 1.0 if s < decay_from else max(0.0, (steps - s) / max(1, steps - decay_from)))
    started = time.perf_counter()
    with progress_bar(f"train SAE {site_name(layer)} {'k=' + str(k) if k else 'l1=' + str(l1_coefficient)}",
                      steps, "steps", enabled=progress) as advance:
        for _ in range(steps):
            x = x_all[torch.randint(x_all.shape[0], (batch_size,), generator=gen)] * scale
            pre = (x - b_dec) @ W_enc + b_enc  # (batch, d_sae)
            if k is not None:
                values, index = pre.topk(k, dim=-1)
                # sparse decode: sum of k weighted decoder rows, (batch, d_in)
                x_hat = F.embedding_bag(index, W_dec, per_sample_weights=F.relu(values), mode="sum") + b_dec
                loss = (x_hat - x).pow(2).sum(-1).mean()
            else:
                z = F.relu(pre)
                x_hat = z @ W_dec + b_dec
                loss = (x_hat - x).pow(2).sum(-1).mean() + l1_coefficient * (z * W_dec.norm(dim=-1)).sum(-1).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            with torch.no_grad():
                W_dec /= W_dec.norm(dim=-1, keepdim=True)
            advance(1)
    seconds = time.perf_counter() - started
    torch.random.set_rng_state(torch_state)
    hook = site_name(layer)
    with torch.no_grad():  # fold the input scale: encode(s x) == encode'(x), decode(z) / s == decode'(z)
        sae = SAE(W_enc=(W_enc * scale).detach().clone(), b_enc=b_enc.detach().clone(),
                  W_dec=(W_dec / scale).detach().clone(), b_dec=(b_dec / scale).detach().clone(),
                  architecture="topk" if k is not None else "relu", k=k,
                  cfg={"hook_name": hook, "meta": {"hook_name": hook, "model_name": model.name}})
    metrics = evaluate_sae(sae, model, layer, data)
    report = TrainingReport(
        architecture=sae.architecture, k=k, l1_coefficient=l1_coefficient, d_in=d_in, d_sae=d_sae, hook_name=hook,
        tokens_seen=steps * batch_size, steps=steps, train_seconds=seconds, harvest_seconds=data.seconds,
        n_train=x_all.shape[0], n_heldout=data.heldout.shape[0], dropped_first_positions=data.dropped_first,
        dropped_sink_positions=data.dropped_sink, scale_factor=scale, seed=seed, corpus_sha256=data.corpus_sha256,
        torch_threads=torch.get_num_threads(), **metrics)
    return sae, report


@torch.no_grad()
def evaluate_sae(sae: SAE, model, layer: int, data: Harvest) -> dict:
    """L0, FVE and dead fraction on held-out activations; downstream KL on held-out 10-token prompts."""
    from .engine import resid_pre, sweep_points

    x = data.heldout
    z = torch.cat([sae.encode(chunk) for chunk in x.split(4096)])
    x_hat = sae.decode(z)
    fve = 1.0 - float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    tokens = data.heldout_prompts
    clean = resid_pre(model, layer, tokens)[:, -1]  # (P, d) the last position, as the claims perturb it
    recon = sae(clean)
    kl = sweep_points(model, layer, tokens, recon[:, None]).kl[:, 0]
    error = (recon - clean).norm(dim=-1, keepdim=True)
    noise = unit(torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).float()
    kl_random = sweep_points(model, layer, tokens, (clean + error * noise)[:, None]).kl[:, 0]
    return {"l0": float((z > 0).sum(-1).float().mean()), "fve": fve,
            "dead_fraction": float(((z > 0).sum(0) == 0).float().mean()),
            "kl_recon_mean": float(kl.mean()), "kl_recon_median": float(kl.median()),
            "kl_random_same_error_mean": float(kl_random.mean()), "n_kl_prompts": int(tokens.shape[0])}


_HARVESTS: dict = {}


def default_sae_dir(model, layer: int, l0_target: int) -> Path:
    from .assets import cache_dir

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model.name)
    d_sae = DEFAULT_EXPANSION * model.d_model
    return (cache_dir() / "sae" /
            f"{name}-L{layer}-topk-k{l0_target}-d{d_sae}-t{DEFAULT_TOKENS}-{model.fingerprint[:12]}-v{FORMAT_VERSION}")


def default_sae(model, layer: int, *, l0_target: int = C10A_L0, progress: bool = True) -> SAE:
    """The project's TopK SAE with k = l0_target, trained once with fixed settings and cached.

    Cached under `assets.cache_dir()/sae/<model>-L<layer>-topk-k<k>-...-<fingerprint>`; the
    training report is in its cfg.json under mcis_claims.training. Harvested activations
    are shared by every SAE trained for the same model and layer in one process.
    The cache is verified on load (the weights' sha256 in cfg.json): a changed file is trained
    again with a one-line warning. Two processes that need it at once train it once: the
    second waits on the lock, then loads what the first wrote.
    """
    path = default_sae_dir(model, layer, l0_target)
    cached, _ = _cached_default(path)
    if cached is not None:
        return cached
    with build_lock(lock_of(path)):
        cached, problem = _cached_default(path)  # another process may have trained it while we waited
        if cached is not None:
            return cached
        if problem:
            warnings.warn(f"mcis-claims: {problem}; training it again", stacklevel=2)
        key = (model.fingerprint, layer)
        if key not in _HARVESTS:
            _HARVESTS.clear()  # keep one pool in memory (hundreds of MB)
            _HARVESTS[key] = harvest(model, layer)
        sae, report = train_sae(model, layer, k=l0_target, data=_HARVESTS[key], progress=progress)
        save_sae(sae, path, hook_name=report.hook_name, lock=False, extra_cfg={
            "trained_by": "mcis_claims.sae_training.train_sae", "model_fingerprint": model.fingerprint,
            "corpus": f"{' + '.join(HARVEST_CORPORA)}, 64-token windows, position 0 dropped",
            "training": report.to_dict()})
        return load_sae(path)


def _cached_default(path: Path) -> tuple[SAE | None, str | None]:
    """(the cached default SAE, None), or (None, why it cannot be used); (None, None) if there is none."""
    if not (path / CFG_FILENAME).is_file():
        return None, None
    try:
        sae = load_sae(path)
    except ModelLoadError as exc:
        return None, f"cached SAE unusable: {exc}"
    if "weights_sha256" not in (sae.cfg.get("mcis_claims") or {}):
        return None, f"cached SAE {path} records no weights sha256 (written by an older mcis-claims)"
    return sae, None


def training_report(sae: SAE) -> dict | None:
    """The stored training report of a default SAE (None for an SAE from elsewhere)."""
    return (sae.cfg.get("mcis_claims") or {}).get("training")
