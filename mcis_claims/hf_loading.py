"""Calling transformers' loaders: quietly, each failure as one line, and the fingerprint of what was loaded.

Shared by `models` (which resolves names and loads every model) and `conversion` (the embedded
models' cache, which checks weights by this fingerprint), so neither needs the other's internals.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings

import torch

from .errors import ModelLoadError


def _state_fingerprint(hf_model) -> str:
    """sha256 of the weights by value, name by name: the fingerprint every report records."""
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
    except Exception as exc:  # a local file the readers cannot parse (safetensors, JSON, ...): one line
        raise ModelLoadError(f"cannot load model {key!r}: {type(exc).__name__}: {_first_line(exc)}") from None


@contextlib.contextmanager
def _file_errors(what: str):
    """Any parse failure of a model file (the GGUF reader raises struct.error, KeyError, ...) as one line naming it."""
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot read {what}: {type(exc).__name__}: {_first_line(exc)}; "
                             f"is the file complete? (a truncated download fails like this)") from None


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
