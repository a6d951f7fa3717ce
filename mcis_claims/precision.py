"""Float64 for computations whose decisions must not hinge on float32 rounding (C3's gradient ascent).

The ascent accepts a step when the KL rose. At the random starts the KL is ~1e-3 nats while float32
logits round at ~1e-6, so in float32 some comparisons, and the normalised gradients near the start,
were rounding: hosts whose kernels round differently (AVX2 against AVX-512) sent some restarts to
other optima, and C3b's health check read 0.501 on one host and 0.491 on another.

`in_float64(model)` is the same model with float64 weights, and `keep_float64()` keeps it float64
throughout: Hugging Face's RMSNorm and rotary tables cast to float32 by hand (`x.to(torch.float32)`,
`inv_freq.float()`), which would put a float32 rounding, different per host, back into the clean
activations; inside the context such a cast of a float64 tensor is a no-op. Float32 tensors and
every cast outside the context are untouched.

    with keep_float64():
        objective = SensitivityObjective(in_float64(model), layer, tokens, radius)
"""
from __future__ import annotations

import copy
import functools

import torch
from torch.overrides import TorchFunctionMode

from .architectures import decode_stack_for
from .errors import ModelLoadError

_DOWNCASTS = (torch.Tensor.float, torch.Tensor.to, torch.Tensor.type)


class keep_float64(TorchFunctionMode):
    """Within the context, `t.float()`, `t.to(torch.float32)`, `t.type(torch.float32)` and any
    `dtype=torch.float32` given with a float64 tensor first (`softmax(x, dtype=...)`) keep float64
    (see the module docstring); everything else runs as written."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if args and isinstance(args[0], torch.Tensor) and args[0].dtype == torch.float64:
            if func is torch.Tensor.float:
                return args[0]
            if func in _DOWNCASTS:
                args = tuple(torch.float64 if a is torch.float32 else a for a in args)
            if kwargs.get("dtype") is torch.float32:  # .to(dtype=...), softmax(x, dtype=torch.float32)
                kwargs = {**kwargs, "dtype": torch.float64}
        return func(*args, **kwargs)


def in_float64(model):
    """The same model with its weights in float64: a deep copy (8 bytes a weight), made once per model.

    Its clean forward runs under `keep_float64`, so its activations carry 16 digits on every host;
    it has no bridge: the engine's clean forward and the optimiser need only the HF module and the
    decode stack. Run the stack's own computations under `keep_float64` too (the rotary tables).
    """
    if model.float64_copy is None:
        from .models import LoadedModel  # models imports this module's users; import at call time

        hf_model = _unwrapped_copy(model.hf_model).double()
        hf_model.forward = _under_keep_float64(hf_model.forward)
        stack = decode_stack_for(hf_model, "generic" if model.stack.path == "generic" else "auto")
        model.float64_copy = LoadedModel(
            name=model.name, source=model.source, hf_model=hf_model, bridge=None, tokenizer=model.tokenizer,
            stack=stack, prepend_bos=model.prepend_bos, fingerprint=model.fingerprint, load_seconds=0.0,
            notes=[*model.notes, "float64 copy"])
    return model.float64_copy


def _unwrapped_copy(hf_model):
    """A fresh HF model of the same class and config holding the same weights, without the bridge.

    TransformerBridge wraps the model's modules in place (each original under `_original_component`,
    plus aliases); a deep copy of that tree does not always run as the original (Phi's copy lost its
    KV cache), so the copy is built anew and given the weights by their HF names.
    """
    fresh = type(hf_model)(copy.deepcopy(hf_model.config)).eval().requires_grad_(False)
    weights = {key.replace("._original_component", ""): value for key, value in hf_model.state_dict().items()}
    wanted = fresh.state_dict()
    missing = sorted(set(wanted) - set(weights))
    if missing:
        raise ModelLoadError(f"{type(hf_model).__name__}: cannot make a float64 copy, weights not found under "
                             f"their HF names: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    fresh.load_state_dict({key: weights[key] for key in wanted})
    return fresh.to(next(hf_model.parameters()).device)


def _under_keep_float64(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        with keep_float64():
            return forward(*args, **kwargs)
    return run
