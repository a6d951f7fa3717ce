"""The KL read-out over a large vocabulary: the fused (compiled) passes against the eager float64 formula."""
import warnings

import pytest
import torch

from mcis_claims import vocab_readout


def _logits(n, rows, vocab=vocab_readout.FUSE_FROM_VOCAB, seed=0):
    logits = torch.randn(n, rows, vocab, generator=torch.Generator().manual_seed(seed)) * 4
    logits[:, -1] = logits[:, 0]  # a row equal to its prompt's clean row
    return logits


@pytest.mark.parametrize("n, rows", [(5, 7), (1, 3), (3, 2)])
def test_fused_agrees_with_eager_and_keeps_zero_exact(n, rows):
    logits = _logits(n, rows)
    fused, eager = vocab_readout.cross_entropies(logits), vocab_readout._eager(logits)
    assert fused.dtype == torch.float64 and fused.shape == (n, rows)
    assert torch.allclose(fused, eager, rtol=0, atol=1e-11)  # the same float64 arithmetic, summed in another order
    assert torch.equal(fused[:, 0], fused[:, -1])  # KL(clean || clean row) is exactly 0
    if rows > 2:
        assert not torch.equal(fused[:, 0], fused[:, 1])


def test_small_vocabulary_stays_eager():
    logits = _logits(3, 4, vocab=vocab_readout.FUSE_FROM_VOCAB - 1)
    assert torch.equal(vocab_readout.cross_entropies(logits), vocab_readout._eager(logits))


def test_compiler_failure_falls_back_to_eager_once(monkeypatch):
    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler\nsecond line")
        return call

    monkeypatch.setattr(vocab_readout, "_compiled", None)
    monkeypatch.setattr(vocab_readout.torch, "compile", broken)
    logits = _logits(2, 3)
    with pytest.warns(UserWarning, match="could not be compiled here .RuntimeError: no C.. compiler.; using the eager"):
        first = vocab_readout.cross_entropies(logits)
    assert torch.equal(first, vocab_readout._eager(logits))
    assert vocab_readout._compiled is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        assert torch.equal(vocab_readout.cross_entropies(logits), first)


def test_a_compiled_kernel_that_disagrees_is_refused_once(monkeypatch):
    """A wrong kernel (a stale Inductor cache built for other CPU instructions returned 1e8 nats) is never used."""
    def wrong(fn, **kwargs):
        return lambda logits: fn(logits) + 1.0  # compiles, runs, and is off by a nat

    monkeypatch.setattr(vocab_readout, "_compiled", None)
    monkeypatch.setattr(vocab_readout.torch, "compile", wrong)
    logits = _logits(2, 3)
    with pytest.warns(UserWarning, match="disagrees with the eager formula by 1 nats on a probe"):
        first = vocab_readout.cross_entropies(logits)
    assert torch.equal(first, vocab_readout._eager(logits)) and vocab_readout._compiled is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(vocab_readout.cross_entropies(logits), first)
