"""The embedded models' conversion cache: each GGUF dequantised once and kept as safetensors.

The first load of an embedded model writes its dense fp32 weights, config and tokenizer to a
folder in the shared cache (`directory`), with a marker file recording the GGUF's sha256, the
sha256 of the weights by value and that of every other file; later loads read the folder
instead of the GGUF. A conversion is used only while all of these match (`read`): a changed
tensor or config is rebuilt from the verified GGUF, never trusted. `models._load_embedded`
decides when to convert; this module reads, checks and writes the folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from . import assets, cache
from .hf_loading import _first_line, _quiet_loading, _state_fingerprint

MARKER = "mcis-source.json"  # beside the files: what they were made from, and their sha256


def directory(key: str, asset) -> Path:
    """Where the conversion of embedded model `key` (from GGUF `asset`) lives: one folder per GGUF sha256."""
    return assets.cache_dir() / "models" / f"{key}-{asset.sha256[:12]}"


def read(converted: Path, gguf_sha256: str, notes: list[str]):
    """(hf_model, tokenizer, weights sha256) from a cached conversion whose weights hash to the sha256
    recorded when it was written, else None, with a note saying why (a note starting "warning:"
    is also shown as a warning). Nothing cached yet is None without a note."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    marker = converted / MARKER
    if not marker.exists():
        return None
    rebuilt = "rebuilt from the verified GGUF"
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        expected = recorded.get("weights_sha256") if isinstance(recorded, dict) else None
        if not expected or recorded.get("gguf_sha256") != gguf_sha256:
            notes.append(f"warning: cached conversion {converted} records no weights hash for this GGUF "
                         f"(written by an older mcis-claims); {rebuilt}")
            return None
        changed = _changed_files(converted, recorded.get("files_sha256"))
        if changed:  # config.json and the tokenizer move results as surely as the weights do
            notes.append(f"warning: cached conversion {converted}: {changed}; {rebuilt}")
            return None
        tokenizer = AutoTokenizer.from_pretrained(converted)
        hf_model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
    except Exception as exc:
        notes.append(f"warning: cached conversion {converted} does not load ({type(exc).__name__}: "
                     f"{_first_line(exc)}); {rebuilt}")
        return None
    got = _state_fingerprint(hf_model)
    if got != expected:
        notes.append(f"warning: cached conversion {converted} has weights sha256 {got[:12]}..., not the "
                     f"{expected[:12]}... recorded when it was written (changed on disk); {rebuilt}")
        return None
    return hf_model, tokenizer, got


def _changed_files(converted: Path, recorded) -> str | None:
    """Which file of a conversion is not the one written (its sha256 recorded then), or why the
    record is unusable; None when every recorded file matches. The weights are checked by value."""
    if not isinstance(recorded, dict) or not recorded:
        return "no per-file sha256 recorded (written by an older mcis-claims)"
    for name, digest in sorted(recorded.items()):
        path = converted / name
        if not path.is_file() or cache.sha256_file(path) != digest:
            return f"{name} is missing or changed on disk (sha256 differs from the one recorded)"
    return None


def verified_config(converted: Path):
    """The config of an embedded model from its conversion cache, when config.json matches its recorded
    sha256 (a millisecond read; parsing the GGUF's metadata takes seconds); else None."""
    from transformers import AutoConfig

    try:
        recorded = json.loads((converted / MARKER).read_text(encoding="utf-8"))
        digest = recorded["files_sha256"]["config.json"]
        if cache.sha256_file(converted / "config.json") != digest:
            return None
        return AutoConfig.from_pretrained(converted, local_files_only=True)
    except Exception:  # no cache yet, an older one, or a damaged one: read the GGUF instead
        return None


def write(converted: Path, hf_model, tokenizer, notes: list[str], **meta) -> None:
    """Write the conversion to a private folder, check that it loads back to the same weights hash,
    then rename it into place: a reader sees the old folder, none, or the whole new one."""
    import shutil
    import tempfile

    from safetensors.torch import save_model

    staging = None
    try:
        converted.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{converted.name}.", dir=converted.parent))
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; the cache is shared
        # save_pretrained refuses models that came through the GGUF quantizer; the
        # weights are dense fp32 now, so write them with safetensors directly.
        save_model(hf_model, str(staging / "model.safetensors"))
        hf_model.config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        meta["files_sha256"] = {f.name: cache.sha256_file(f) for f in sorted(staging.iterdir())
                                if f.is_file() and f.name != "model.safetensors"}  # the weights: by value
        (staging / MARKER).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        check: list[str] = []
        with _quiet_loading():
            if read(staging, meta["gguf_sha256"], check) is None:
                notes.append(f"warning: the conversion does not load back to the same weights ({'; '.join(check)}); "
                             f"not cached, so every load converts the GGUF again")
                return
        old = None
        if converted.exists():  # a damaged copy: move it aside, then the new one in (two renames)
            old = converted.with_name(f".{converted.name}.old-{os.getpid()}")
            os.replace(converted, old)
        os.replace(staging, converted)
        staging = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:  # the cache is an optimisation; a read-only cache just means slower loads
        notes.append(f"could not cache the conversion at {converted} ({exc.strerror or exc}); loads convert again")
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
