"""The read-outs over the vocabulary: each row's KL from its prompt's clean row, in float64.

For every perturbed row the engine needs c_row = sum_v p log q_row = p . z_row - logsumexp(z_row) sum_v p,
with p the clean row's distribution; KL(clean || row) = c_clean - c_row (engine._forward_rows). In
float64, because in float32 the log-sum-exps round differently and leave ~1e-7 nats of noise.

Eagerly that is a float64 copy of every row's logits and four passes over it: on SmolLM2's 49,152
tokens about 2.4 GB of memory traffic per thousand rows, which in a default claims run took more
time than the unembedding product itself (py-spy: 216 s against 172 s). On the CPU, for a large
vocabulary, the same formula is compiled (torch.compile, Inductor): the cast fuses into the
reductions, so the float32 logits are read a few times and no float64 copy is made (about 6x faster).
It is the same arithmetic in float64 summed in another order: c_row moves by ~1e-13 nats, and every
row still goes through one kernel, so a row equal to its clean row has KL exactly 0.

Small vocabularies (the tests' toy models) and other devices keep the eager path; where the
compiler is unavailable (no C++ toolchain) the first call says so once and stays eager. The
compiled kernel is checked once against the eager formula on a random probe before it is used: a
kernel from Inductor's on-disk cache built for other CPU instructions than this process runs
(seen with ATEN_CPU_CAPABILITY=avx2 over an AVX-512 cache) returned KLs of 1e8 nats; such a kernel
is refused with one warning, and the eager passes run instead.
"""
from __future__ import annotations

import warnings

import torch

FUSE_FROM_VOCAB = 8192  # below this the eager passes are cheap and compiling is not worth its seconds
PROBE_TOLERANCE = 1e-9  # nats: the compiled and eager sums differ by ~1e-13 on the probe; a broken kernel by >1

_compiled = None  # the compiled cross-entropy function, once built; False: compiling failed, stay eager


def cross_entropies(logits: torch.Tensor) -> torch.Tensor:
    """(n, 1 + m, V) logits, row 0 of each prompt the clean one -> (n, 1 + m) float64 sum_v p log q_row."""
    if logits.device.type == "cpu" and logits.shape[-1] >= FUSE_FROM_VOCAB:
        fused = _fused()
        if fused is not None:
            return fused(logits)
    return _eager(logits)


def _eager(logits: torch.Tensor) -> torch.Tensor:
    return _cross(logits, fusable=False)


def _fusable(logits: torch.Tensor) -> torch.Tensor:
    return _cross(logits, fusable=True)


def _cross(logits: torch.Tensor, *, fusable: bool) -> torch.Tensor:
    """The formula, once. fusable: p . z written as a reduction (the compiler fuses it with the cast);
    else one matrix-vector product per prompt (eagerly the faster kernel, and the engine's bits before)."""
    z = logits.double()
    lse = torch.logsumexp(z, dim=-1)  # (n, 1 + m)
    p = (z[:, :1] - lse[:, :1, None]).exp()  # (n, 1, V): the clean distribution
    dot = (p * z).sum(-1) if fusable else torch.einsum("npv,nmv->nm", p, z)
    return dot - lse * p.sum(-1)


def _fused():
    """The compiled `_fusable`, or None where it cannot be built here (said once)."""
    global _compiled
    if _compiled is None:
        compiled = torch.compile(_fusable, dynamic=True)
        # compiling happens at the first call: a probe of the real kind, distinct sizes (no duck-sized guard)
        probe = torch.randn(2, 3, FUSE_FROM_VOCAB, generator=torch.Generator().manual_seed(0)) * 4
        try:
            error = float((compiled(probe) - _eager(probe)).abs().max())
        except Exception as failure:  # noqa: BLE001 - any compiler failure means: stay eager
            reason = f"could not be compiled here ({type(failure).__name__}: " \
                     f"{str(failure).splitlines()[0] if str(failure) else ''})"
        else:
            reason = None if error <= PROBE_TOLERANCE else \
                f"disagrees with the eager formula by {error:.3g} nats on a probe (a stale Inductor cache? " \
                f"clear TORCHINDUCTOR_CACHE_DIR)"
        if reason:
            warnings.warn(f"mcis-claims: the fused KL read-out {reason}; using the eager float64 passes "
                          f"(slower, same formula)", stacklevel=3)
        _compiled = False if reason else compiled
    return _compiled or None
