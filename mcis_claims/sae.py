"""Sparse autoencoders in SAELens' file format: the SAE itself, loading, saving and site checks.

SAELens cannot be installed beside TransformerLens 4.x, so this module reads and writes
its on-disk layout itself: a directory with `cfg.json` and `sae_weights.safetensors`
(tensors W_enc (d_in, d_sae), b_enc (d_sae,), W_dec (d_sae, d_in), b_dec (d_in,), and
`threshold` (d_sae,) for JumpReLU). A researcher's SAELens SAE loads as it is.

    sae = load_sae("path/to/sae")            # standard (ReLU), topk or jumprelu
    z = sae.encode(x); x_hat = sae.decode(z)  # encode: act((x - b_dec) @ W_enc + b_enc)
    save_sae(sae, "my_sae")                   # loads back bitwise

Only the format lives here, so reading a user's SAE never imports the training code. Training
and the cached default SAEs are in `sae_training.py`; what claim C10 builds from an SAE
(synthetic activations, decoder directions) is in `synthetic.py`.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .cache import atomic_write, build_lock, sha256_bytes
from .directions import unit
from .errors import InputError, ModelLoadError, SiteError
from .sites import layer_of

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
ARCHITECTURES = ("relu", "topk", "jumprelu")
_SAELENS_NAMES = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}


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
        with build_lock(lock_of(root)):
            _write_files(root, weights, cfg)
    else:
        _write_files(root, weights, cfg)
    sae.cfg = cfg
    return root


def lock_of(root: Path) -> Path:
    """The lock of an SAE directory lives inside it (`.mcis-claims.lock`), not beside it in the user's folder."""
    return root / ".mcis-claims"


def _write_files(root: Path, weights: bytes, cfg: dict) -> None:
    """Each file through a temporary name and a rename, weights first, cfg.json (with the weights'
    sha256) last: a reader sees whole files, and load_sae reads again if it caught the pair mid-swap.
    The caller holds the directory's lock (`lock_of`)."""
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(root / WEIGHTS_FILENAME, weights)
    atomic_write(root / CFG_FILENAME, (json.dumps(cfg, indent=2) + "\n").encode("utf-8"))




def hook_layer(hook_name: str | None, source: str = "SAE") -> int | None:
    """The layer L whose `blocks.L.hook_resid_pre` an SAE reads (resid_post of L-1 is the same
    tensor); None when the config names no hook. Other sites cannot be perturbed by the claims."""
    if not hook_name:
        return None
    try:
        return layer_of(hook_name)
    except SiteError:
        raise InputError(f"{source}: hook {hook_name!r} is not a residual-stream site; C10 perturbs "
                         f"blocks.<L>.hook_resid_pre (or blocks.<L-1>.hook_resid_post)") from None


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
