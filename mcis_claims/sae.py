"""Sparse autoencoders for claim C10, native to this project, in SAELens' file format.

SAELens cannot be installed beside TransformerLens 4.x, so this module reads and writes
its on-disk layout itself: a directory with `cfg.json` and `sae_weights.safetensors`
(tensors W_enc (d_in, d_sae), b_enc (d_sae,), W_dec (d_sae, d_in), b_dec (d_in,), and
`threshold` (d_sae,) for JumpReLU). A researcher's SAELens SAE loads as it is.

    sae = load_sae("path/to/sae")            # standard (ReLU), topk or jumprelu
    z = sae.encode(x); x_hat = sae.decode(z)  # encode: act((x - b_dec) @ W_enc + b_enc)
    sae, report = train_sae(model, 1, k=16)   # harvested at blocks.1.hook_resid_pre
    sae = default_sae(model, 1, l0_target=16) # trained once, cached by model fingerprint

Default training (why TopK): TopK fixes L0 exactly, so the two L0s C10(b) compares are
stated in advance rather than reached by tuning an L1 coefficient; it has no L1
shrinkage and trains well on a short budget (Gao et al. 2024). ReLU + L1 is available
with `l1_coefficient=`.

Synthetic activations (Giglemiani et al. 2024) and SAE decoder directions (Lee &
Heimersheim 2024) are at the end: `synthetic_single`, `synthetic_composite`,
`synthetic_recon_other`, `sae_decoder`.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .cache import atomic_write, build_lock, sha256_bytes
from .directions import DirectionKind, unit
from .errors import InputError, ModelLoadError
from .progress import progress_bar

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
ARCHITECTURES = ("relu", "topk", "jumprelu")
_SAELENS_NAMES = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}

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


# ---------------------------------------------------------------- the SAE


@dataclass
class SAE:
    """Inference-only SAE: encode((x - b_dec) @ W_enc + b_enc) -> latents; decode z @ W_dec + b_dec."""

    W_enc: torch.Tensor  # (d_in, d_sae)
    b_enc: torch.Tensor  # (d_sae,)
    W_dec: torch.Tensor  # (d_sae, d_in)
    b_dec: torch.Tensor  # (d_in,)
    architecture: str = "topk"  # relu | topk | jumprelu
    k: int | None = None  # topk only
    threshold: torch.Tensor | None = None  # jumprelu only, (d_sae,)
    apply_b_dec_to_input: bool = True
    cfg: dict = field(default_factory=dict)  # everything else from cfg.json (hook_name, meta, ...)
    weights_sha256: str | None = None  # sha256 of the sae_weights.safetensors bytes it was loaded from

    def __post_init__(self):
        _check_sae(self, where="SAE")

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    @property
    def hook_name(self) -> str | None:
        return self.cfg.get("hook_name") or (self.cfg.get("meta") or {}).get("hook_name")

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for t in (self.W_enc, self.b_enc, self.W_dec, self.b_dec):
            digest.update(t.detach().contiguous().numpy().tobytes())
        return digest.hexdigest()

    @property
    def label(self) -> str:
        """Short name for reports and cache keys: architecture, k, size and weight hash."""
        k = f"k{self.k}-" if self.architecture == "topk" else ""
        return f"{self.architecture}-{k}d{self.d_sae}@{self.fingerprint[:8]}"

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.W_enc.dtype)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> (..., d_sae) latent activations."""
        pre = self.pre_activations(x)
        if self.architecture == "relu":
            return F.relu(pre)
        if self.architecture == "jumprelu":
            return F.relu(pre) * (pre > self.threshold)
        values, index = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, index, F.relu(values))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    __call__ = forward

    def unit_decoder(self) -> torch.Tensor:
        """(d_sae, d_in) unit decoder rows, float64: the directions of the latents."""
        return unit(self.W_dec.double())


def weights_sha256(sae: SAE) -> str:
    """sha256 of the SAE's sae_weights.safetensors: the file it was loaded from or saved to, else
    the bytes save_sae would write. The SAE's provenance in C10's records and the baseline."""
    if sae.weights_sha256:
        return sae.weights_sha256
    from safetensors.torch import save

    tensors = {"W_enc": sae.W_enc, "b_enc": sae.b_enc, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
    if sae.architecture == "jumprelu":
        tensors["threshold"] = sae.threshold
    return sha256_bytes(save({k: v.detach().contiguous() for k, v in tensors.items()}))


def _check_sae(sae: SAE, where: str) -> None:
    if sae.architecture not in ARCHITECTURES:
        raise InputError(f"{where}: architecture {sae.architecture!r}; supported: {', '.join(ARCHITECTURES)}")
    d_in, d_sae = sae.W_enc.shape if sae.W_enc.dim() == 2 else (None, None)
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if sae.architecture == "jumprelu":
        expected["threshold"] = (d_sae,)
    for name, shape in expected.items():
        t = getattr(sae, name)
        if t is None:
            raise InputError(f"{where}: missing tensor {name} for a {sae.architecture} SAE")
        if tuple(t.shape) != shape:
            raise InputError(f"{where}: {name} has shape {tuple(t.shape)}, expected {shape} "
                             f"(from W_enc {tuple(sae.W_enc.shape)} = (d_in, d_sae))")
        if not torch.isfinite(t).all():
            raise InputError(f"{where}: {name} contains NaN or inf")
    if sae.architecture == "topk" and not (isinstance(sae.k, int) and 1 <= sae.k <= d_sae):
        raise InputError(f"{where}: topk SAE needs an integer k in [1, d_sae={d_sae}]; got {sae.k!r}")


# ---------------------------------------------------------------- SAELens files


def load_sae(path) -> SAE:
    """Load a SAELens-format SAE directory (cfg.json + sae_weights.safetensors). Never unpickles.

    Accepts SAELens v6 configs (`architecture` standard/topk/jumprelu, `k` at top level,
    `meta.hook_name`) and the v5 variants (`hook_name` at top level, `activation_fn_str`
    "topk" with `activation_fn_kwargs: {"k": ...}`). JumpReLU `log_threshold` is
    exponentiated; TopK `rescale_acts_by_decoder_norm` is folded into the weights (same
    outputs). Weights are converted to float32.
    """
    root = Path(path).expanduser()
    if root.is_file() and root.name in (CFG_FILENAME, WEIGHTS_FILENAME):
        root = root.parent
    if not root.is_dir():
        raise ModelLoadError(f"SAE {path}: not a directory; pass a folder with {CFG_FILENAME} and {WEIGHTS_FILENAME}")
    cfg_path, weights_path = root / CFG_FILENAME, root / WEIGHTS_FILENAME
    for file in (cfg_path, weights_path):
        if not file.is_file():
            raise ModelLoadError(f"SAE {root}: missing {file.name} (SAELens layout: {CFG_FILENAME} + {WEIGHTS_FILENAME})")
    cfg, tensors, digest = _read_files(cfg_path, weights_path)
    architecture, k = _architecture(cfg, cfg_path)
    if "threshold" not in tensors and "log_threshold" in tensors:
        tensors["threshold"] = tensors["log_threshold"].float().exp()
    needed = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if architecture == "jumprelu" else [])
    missing = [name for name in needed if name not in tensors]
    if missing:
        raise ModelLoadError(f"SAE {weights_path}: missing tensor {', '.join(missing)} "
                             f"(has {', '.join(sorted(tensors)) or 'none'})")
    weights = {name: tensors[name].float() for name in needed}
    for key in ("d_in", "d_sae"):
        if key in cfg and not isinstance(cfg[key], int):
            raise ModelLoadError(f"SAE {cfg_path}: {key} must be an integer; got {cfg[key]!r}")
    declared = (cfg.get("d_in"), cfg.get("d_sae"))
    if weights["W_enc"].dim() != 2 or (None not in declared and tuple(weights["W_enc"].shape) != declared):
        raise ModelLoadError(f"SAE {weights_path}: W_enc has shape {tuple(weights['W_enc'].shape)} but "
                             f"{CFG_FILENAME} says (d_in, d_sae) = {declared}")
    if cfg.get("architecture") == "topk" and cfg.get("rescale_acts_by_decoder_norm"):
        norm = weights["W_dec"].norm(dim=-1)  # topk on pre * ||d_i||, decode with z / ||d_i||: fold it
        weights["W_enc"], weights["b_enc"] = weights["W_enc"] * norm, weights["b_enc"] * norm
        weights["W_dec"] = weights["W_dec"] / norm[:, None]
    norm_mode = cfg.get("normalize_activations", "none") or "none"
    if norm_mode != "none":
        raise ModelLoadError(f"SAE {cfg_path}: normalize_activations={norm_mode!r} is not supported; fold the "
                             f"scaling into the weights first (SAELens: fold_activation_norm_scaling_factor)")
    try:
        return SAE(**weights, architecture=architecture, k=k, apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
                   cfg=cfg, weights_sha256=digest)
    except InputError as exc:
        raise ModelLoadError(f"SAE {root}: {str(exc).removeprefix('SAE: ')}") from None


_READ_ATTEMPTS = 5  # a concurrent save_sae swaps two files; a read caught between them reads again


def _read_files(cfg_path: Path, weights_path: Path) -> tuple[dict, dict, str]:
    """cfg.json, the tensors and the weights file's sha256, read as one consistent pair.

    When cfg.json records the weights' sha256 (every save_sae does), the bytes read must hash to
    it: a mismatch right after a concurrent save_sae is read again; one that persists means the
    weights changed after they were written, and is an error rather than silently other tensors.
    """
    from safetensors.torch import load

    for attempt in range(_READ_ATTEMPTS):
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            data = weights_path.read_bytes()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"SAE {cfg_path}: corrupt JSON ({str(exc).splitlines()[0]})") from None
        except OSError as exc:
            raise ModelLoadError(f"SAE {cfg_path.parent}: cannot read ({exc.strerror or exc}: "
                                 f"{Path(exc.filename or cfg_path).name})") from None
        if not isinstance(cfg, dict):
            raise ModelLoadError(f"SAE {cfg_path}: expected a JSON object, got {type(cfg).__name__}")
        ours = cfg.get("mcis_claims") if isinstance(cfg.get("mcis_claims"), dict) else {}
        expected, got = ours.get("weights_sha256"), sha256_bytes(data)
        if expected is None or got == expected:
            break
        time.sleep(0.05 * (attempt + 1))
    else:
        raise ModelLoadError(f"SAE {weights_path}: sha256 {got[:12]}... is not the {str(expected)[:12]}... that "
                             f"{CFG_FILENAME} records; the weights changed after they were written: save or "
                             f"train the SAE again")
    try:
        tensors = load(data)
    except Exception as exc:  # safetensors raises SafetensorError, ValueError, ... on a bad header
        raise ModelLoadError(f"SAE {weights_path}: cannot read safetensors ({type(exc).__name__}: "
                             f"{(str(exc).splitlines() or [''])[0]})") from None
    return cfg, tensors, got


def _architecture(cfg: dict, cfg_path: Path) -> tuple[str, int | None]:
    name = str(cfg.get("architecture", "standard")).lower()
    activation = str(cfg.get("activation_fn_str") or cfg.get("activation_fn") or "relu").lower()
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if name == "gated":
        raise ModelLoadError(f"SAE {cfg_path}: gated SAEs are not supported (they need b_gate, r_mag, b_mag); "
                             f"supported architectures: standard, topk, jumprelu")
    if name in ("standard", "relu") and activation == "topk":
        name = "topk"  # SAELens v5: a "standard" SAE with a topk activation
    if name in ("standard", "relu"):
        if activation != "relu":
            raise ModelLoadError(f"SAE {cfg_path}: activation {activation!r} is not supported (relu or topk)")
        return "relu", None
    if name == "topk":
        k = cfg.get("k", kwargs.get("k") if isinstance(kwargs, dict) else None)
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        if not isinstance(k, int) or k < 1:
            raise ModelLoadError(f"SAE {cfg_path}: topk SAE needs a positive integer k (cfg 'k' or "
                                 f"'activation_fn_kwargs.k'); got {k!r}")
        return "topk", k
    if name == "jumprelu":
        return "jumprelu", None
    raise ModelLoadError(f"SAE {cfg_path}: unknown architecture {name!r}; supported: standard, topk, jumprelu")


def save_sae(sae: SAE, path, *, hook_name: str | None = None, extra_cfg: dict | None = None,
             lock: bool = True) -> Path:
    """Write `sae` in the SAELens v6 layout; `load_sae(path)` gives back identical tensors.

    `extra_cfg` goes under the top-level key "mcis_claims" (SAELens ignores unknown
    top-level keys; its `meta` block is strict, so nothing of ours goes there), beside
    `weights_sha256`, which load_sae checks. Safe under concurrent writers and readers: see
    `_write_files`. lock=False only for a caller that already holds the lock (default_sae).
    """
    from safetensors.torch import save

    root = Path(path).expanduser()
    hook_name = hook_name or sae.hook_name
    meta = dict(sae.cfg.get("meta") or {})
    if hook_name:
        meta["hook_name"] = hook_name
    cfg = {
        "architecture": _SAELENS_NAMES[sae.architecture], "d_in": sae.d_in, "d_sae": sae.d_sae,
        "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": "none", "reshape_activations": "none", "meta": meta,
    }
    if hook_name:
        cfg["hook_name"] = hook_name  # SAELens v5 readers look here
    if sae.architecture == "topk":
        cfg["k"] = sae.k
        cfg["rescale_acts_by_decoder_norm"] = False
    extras = {**(sae.cfg.get("mcis_claims") or {}), **(extra_cfg or {})}
    tensors = {"W_enc": sae.W_enc, "b_enc": sae.b_enc, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
    if sae.architecture == "jumprelu":
        tensors["threshold"] = sae.threshold
    weights = save({k: v.detach().contiguous() for k, v in tensors.items()})
    # the content hash, checked by load_sae: a changed or half-replaced weights file is caught
    cfg["mcis_claims"] = {**extras, "weights_sha256": sha256_bytes(weights)}
    sae.weights_sha256 = cfg["mcis_claims"]["weights_sha256"]
    if lock:  # two writers of one path take turns, so the pair on disk always matches
        with build_lock(_lock_of(root)):
            _write_files(root, weights, cfg)
    else:
        _write_files(root, weights, cfg)
    sae.cfg = cfg
    return root


def _lock_of(root: Path) -> Path:
    """The lock of an SAE directory lives inside it (`.mcis-claims.lock`), not beside it in the user's folder."""
    return root / ".mcis-claims"


def _write_files(root: Path, weights: bytes, cfg: dict) -> None:
    """Each file through a temporary name and a rename, weights first, cfg.json (with the weights'
    sha256) last: a reader sees whole files, and load_sae reads again if it caught the pair mid-swap.
    The caller holds the directory's lock (`_lock_of`)."""
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(root / WEIGHTS_FILENAME, weights)
    atomic_write(root / CFG_FILENAME, (json.dumps(cfg, indent=2) + "\n").encode("utf-8"))


_RESID_HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|post)")


def hook_layer(hook_name: str | None, source: str = "SAE") -> int | None:
    """The layer L whose `blocks.L.hook_resid_pre` an SAE reads (resid_post of L-1 is the same
    tensor); None when the config names no hook. Other sites cannot be perturbed by the claims."""
    if not hook_name:
        return None
    match = _RESID_HOOK.fullmatch(hook_name.strip())
    if not match:
        raise InputError(f"{source}: hook {hook_name!r} is not a residual-stream site; C10 perturbs "
                         f"blocks.<L>.hook_resid_pre (or blocks.<L-1>.hook_resid_post)")
    return int(match.group(1)) + (match.group(2) == "post")


def read_hook_layer(path) -> int | None:
    """`hook_layer` of an SAE directory, from its cfg.json alone (collection time: no weights read)."""
    cfg_path = Path(path).expanduser()
    cfg_path = cfg_path if cfg_path.name == CFG_FILENAME else cfg_path / CFG_FILENAME
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"--sae {path}: no {CFG_FILENAME} there (SAELens layout: {CFG_FILENAME} + "
                             f"{WEIGHTS_FILENAME})") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"--sae {cfg_path}: unreadable ({str(exc).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"--sae {cfg_path}: expected a JSON object, got {type(cfg).__name__}")
    return hook_layer(cfg.get("hook_name") or (cfg.get("meta") or {}).get("hook_name"), f"--sae {path}")


def check_site(sae: SAE, model, layer: int, *, source: str = "SAE") -> None:
    """The SAE must read this site of the model: d_in == d_model and, when its config names a hook,
    blocks.{layer}.hook_resid_pre (one-line error otherwise)."""
    if sae.d_in != model.d_model:
        raise InputError(f"{source}: d_in={sae.d_in} but {model.name} has d_model={model.d_model}; "
                         f"pass an SAE trained on {model.name}'s residual stream")
    at = hook_layer(sae.hook_name, source)
    if at is not None and at != layer:
        raise InputError(f"{source}: trained at {sae.hook_name}, but this cell perturbs "
                         f"blocks.{layer}.hook_resid_pre; run it with --layers {at}")


# ---------------------------------------------------------------- harvesting and training


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
    with build_lock(_lock_of(path)):
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
            "trained_by": "mcis_claims.sae.train_sae", "model_fingerprint": model.fingerprint,
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


# ---------------------------------------------------------------- latents, synthetic activations, directions


@torch.no_grad()
def latent_density(sae: SAE, activations: torch.Tensor) -> torch.Tensor:
    """(d_sae,) fraction of `activations` (n, d) on which each latent is active."""
    active = torch.cat([(sae.encode(chunk.float()) > 0) for chunk in activations.split(4096)])
    return active.double().mean(0)


def log_density(density: torch.Tensor, n: int) -> torch.Tensor:
    """log10 density, floored at half a count (1 / 2n) so never-seen latents compare finitely."""
    return torch.log10(density.clamp_min(0.5 / n))


@torch.no_grad()
def synthetic_single(sae: SAE, n: int, density: torch.Tensor, target_norm: float, generator: torch.Generator):
    """(n, d) activations decode(a e_i): one latent i, drawn by density among alive latents, with
    a > 0 chosen so that ||b_dec + a W_dec[i]|| equals `target_norm` (the site's median norm)."""
    alive = density > 0
    if not alive.any():
        raise InputError("synthetic_single: no latent is ever active on the real pool")
    latent = torch.multinomial(density.float(), n, replacement=True, generator=generator)
    d, b = sae.W_dec[latent].double(), sae.b_dec.double()
    # ||b + a d||^2 = m^2  ->  a = (-b.d + sqrt((b.d)^2 - |d|^2 (|b|^2 - m^2))) / |d|^2
    bd, dd, bb = d @ b, (d * d).sum(-1), b @ b
    disc = (bd**2 - dd * (bb - target_norm**2)).clamp_min(0)
    a = ((-bd + disc.sqrt()) / dd).clamp_min(0)
    return (b + a[:, None] * d).float(), latent


@torch.no_grad()
def match_norm(synthetic: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """(n, d) each synthetic row scaled to the norm of the real base it replaces (bases: (n, d)),
    so that a synthetic base differs from its real one in direction only (C10a)."""
    if synthetic.shape != bases.shape:
        raise InputError(f"match_norm: synthetic {tuple(synthetic.shape)} and bases {tuple(bases.shape)} differ")
    scale = bases.double().norm(dim=-1, keepdim=True) / synthetic.double().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (synthetic.double() * scale).to(synthetic.dtype)


@torch.no_grad()
def synthetic_recon_other(sae: SAE, pool: torch.Tensor, n: int, generator: torch.Generator):
    """(n, d) SAE reconstructions of other prompts' real activations (from `pool`)."""
    index = torch.randint(pool.shape[0], (n,), generator=generator)
    return sae(pool[index].float()), index


@dataclass(frozen=True)
class Composite:
    activations: torch.Tensor  # (n, d)
    original: list  # per base: the base's active latents, by decreasing activation
    replaced: list  # per base: the latents that replace them, same order and values
    fallbacks: int  # replacements with no candidate within tolerance: the nearest density was used


@torch.no_grad()
def synthetic_composite(sae: SAE, bases: torch.Tensor, density: torch.Tensor, n_pool: int,
                        generator: torch.Generator, *, tolerance: float = 0.1, match_cosine: bool = False) -> Composite:
    """Each base's active latents swapped for other latents of similar density, same values, decoded.

    Density is matched on the log10 scale, |log10 p_new - log10 p_old| < tolerance (p measured on
    `n_pool` real activations; Bloom's SAEs store sparsity as log10 density, which is what
    Giglemiani et al.'s |Delta sparsity| < 0.1 refers to). This controls sparsity: the same L0,
    values and per-latent densities. With match_cosine (Giglemiani et al.'s structured synthetic
    activations), the cosine similarities between the new latents' decoder directions also
    follow the originals': latents are placed in decreasing order of activation, the first at
    random among the density-matched candidates, each next one the candidate minimising
    sum_s (cos(new, new_s) - cos(old, old_s))^2 over those already placed.
    """
    z = sae.encode(bases.float())
    logp = log_density(density, n_pool)
    alive = density > 0
    directions = sae.unit_decoder()
    out, originals, replacements, fallbacks = [], [], [], 0
    for row in z:
        active = torch.nonzero(row > 0).flatten()
        active = active[row[active].argsort(descending=True)]
        taken = torch.zeros_like(alive)
        taken[active] = True  # never reuse the base's own latents
        new = []
        for t, old in enumerate(active.tolist()):
            free = alive & ~taken
            candidates = torch.nonzero(free & ((logp - logp[old]).abs() < tolerance)).flatten()
            if len(candidates) == 0:
                fallbacks += 1
                pool = torch.nonzero(free).flatten()
                candidates = pool[(logp[pool] - logp[old]).abs().argmin()].reshape(1)
            if match_cosine and t > 0:
                target = directions[active[:t]] @ directions[old]  # (t,) cosines among the originals
                got = directions[candidates] @ directions[torch.tensor(new)].T  # (C, t)
                choice = candidates[(got - target).pow(2).sum(-1).argmin()]
            else:
                choice = candidates[torch.randint(len(candidates), (1,), generator=generator)][0]
            new.append(int(choice))
            taken[choice] = True
        swapped = torch.zeros_like(row)
        if new:
            swapped[torch.tensor(new)] = row[active]
        out.append(sae.decode(swapped))
        originals.append(active.tolist())
        replacements.append(new)
    return Composite(torch.stack(out), originals, replacements, fallbacks)


class _SAEDecoder(DirectionKind):
    """Unit decoder rows of latents that are active on the base, alive but inactive, or dead.

    Alive / dead is judged on the site's real pool (SiteStats.activations): dead = never active there.
    """

    WHICH = ("active", "inactive", "dead")

    def __init__(self, sae: SAE, which: str = "active"):
        if which not in self.WHICH:
            raise InputError(f"sae_decoder which={which!r}; choose one of {', '.join(self.WHICH)}")
        self.sae, self.which = sae, which
        self.name = f"sae_decoder_{which}"

    def sample(self, stats, n, k, generator, bases=None):
        if bases is None and self.which != "dead":
            raise InputError(f"{self!r} needs the base activations (latents active on each base)")
        density = latent_density(self.sae, stats.activations)
        directions = self.sae.unit_decoder()
        out = torch.empty(n, k, directions.shape[1], dtype=torch.float64)
        active = (self.sae.encode(bases.float()) > 0) if bases is not None else None
        for i in range(n):
            if self.which == "active":
                pool = torch.nonzero(active[i]).flatten()
            elif self.which == "inactive":
                pool = torch.nonzero(~active[i] & (density > 0)).flatten()
            else:
                pool = torch.nonzero(density == 0).flatten()
            if len(pool) == 0:
                raise InputError(f"{self!r}: no such latent for base {i} (the SAE has none {self.which} there)")
            pick = pool[torch.randint(len(pool), (k,), generator=generator)]
            out[i] = directions[pick]
        return out

    def __repr__(self) -> str:
        return f"sae_decoder({self.sae.label!r}, which={self.which!r})"


def sae_decoder(sae: SAE, which: str = "active") -> DirectionKind:
    return _SAEDecoder(sae, which)


# ---------------------------------------------------------------- helpers for claim C10


def cell_saes(cell, need: str = "both") -> tuple[SAE, list[SAE], str]:
    """The SAE for C10(a) and the SAEs (>= 2, by L0) for C10(b) of a claim cell, and where they came from.

    --sae DIR: that SAE for (a), and no SAEs for (b): need="b" skips the cell with the option to
    pass, rather than train default SAEs the user did not ask for. --sae DIR1,DIR2[,...]: the
    first for (a), all for (b). Otherwise the default TopK SAEs, trained on first use and cached:
    k = C10A_L0 for (a), every k in DEFAULT_L0S for (b).
    """
    if need not in ("a", "b", "both"):
        raise ValueError(f"need={need!r}: 'a', 'b' or 'both'")
    def default(k):
        return cell.workspace.cached(("default_sae", cell.model_name, cell.layer, k),
                                     lambda: default_sae(cell.model, cell.layer, l0_target=k))

    paths = [p.strip() for p in str(cell.config.sae or "").split(",") if p.strip()]
    if not paths:
        if need == "a":  # C10a alone needs only its own default SAE
            return default(C10A_L0), [], "default"
        saes = [default(k) for k in DEFAULT_L0S]
        return default(C10A_L0), saes, "default"
    user = [load_sae(path) for path in paths]
    for path, sae in zip(paths, user):
        check_site(sae, cell.model, cell.layer, source=f"--sae {path}")
    if len(user) >= 2:
        return user[0], user, "--sae"
    if need == "b":
        import pytest

        pytest.skip(f"C10b compares SAEs of two L0s and --sae names one ({paths[0]}); "
                    f"pass --sae LOW_L0_DIR,HIGH_L0_DIR to run it")
    return user[0], [], "--sae (C10a only)"


def cell_sweep_points(cell, label: str, bases: torch.Tensor, u: torch.Tensor, *, reference: bool):
    """KL curves (m, K, S) for points bases + r u over the cell's radii, on the first m base prompts.

    reference=True: compare with each synthetic base's own output (bases replace the clean
    activation); False: the bases are the clean activations (a direction sweep).
    """
    from dataclasses import replace

    from .cell import KindSweep
    from .engine import sweep_points

    def compute():
        started = time.perf_counter()
        m, K = u.shape[:2]
        radii = cell.radii_abs
        points = (bases[:, None, None, :] + radii[None, None, :, None] * u[:, :, None, :].float()).flatten(1, 2)
        with cell._progress(f"{cell.model_name} {cell.site} {label}", m * K * len(radii)) as advance:
            result = sweep_points(cell.model, cell.layer, cell.prompts.tokens[:m], points,
                                  reference=bases if reference else None, progress=advance)
        grid = (K, len(radii))  # (m, K*S, ...) -> (m, K, S, ...)
        result = replace(result, **{name: getattr(result, name).unflatten(1, grid)
                                    for name in ("kl", "resid_l2", "final_l2", "top1_changed")})
        return KindSweep(kind=label, kl=result.kl, radii_rel=cell.radii_rel, result=result,
                         seconds=time.perf_counter() - started)

    return cell.workspace.cached(("c10", cell.model_name, cell.layer, label, bases.shape[0], u.shape[1]), compute)
