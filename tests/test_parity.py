"""The parity preflight passes on a correct engine and names what breaks on a wrong one."""
import pytest
import torch

from mcis_claims import parity
from mcis_claims.parity import ParityError, check_site


def _tokens(n=4, T=8, vocab=40, seed=0):
    return torch.randint(3, vocab, (n, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layer", [0, 2])
def test_engine_passes_parity_on_tiny_models(tiny_model, layer):
    check = check_site(tiny_model, layer, _tokens(), torch.Generator().manual_seed(0))
    assert check.ok, check.problems
    assert check.zero_kl <= parity.KL_ATOL
    assert check.large_kl_min > 0.0
    assert check.n_prompts == parity.N_PROMPTS
    meta = check.to_meta()
    assert meta["ok"] and meta["tolerance"]["kl_rtol"] == parity.KL_RTOL
    check.raise_if_failed()


def test_a_wrong_engine_fails_parity_with_one_line(tiny_model, monkeypatch):
    stack = tiny_model.stack
    original = stack.logits_from_normed  # what the engine unembeds with
    monkeypatch.setattr(stack, "logits_from_normed", lambda normed: original(normed) * 1.05)
    check = check_site(tiny_model, 1, _tokens(), torch.Generator().manual_seed(0))
    assert not check.ok
    assert any("engine KL differs" in p for p in check.problems)
    with pytest.raises(ParityError, match=r"parity preflight failed for tiny-\w+ at blocks\.1\.hook_resid_pre") as info:
        check.raise_if_failed()
    assert "\n" not in str(info.value)


def test_a_misplaced_hook_fails_parity(tiny_model, monkeypatch):
    real = parity._bridge_resid_pre
    monkeypatch.setattr(parity, "_bridge_resid_pre", lambda model, layer, tokens: real(model, layer - 1, tokens))
    check = check_site(tiny_model, 2, _tokens(), torch.Generator().manual_seed(0))
    assert any("hook_resid_pre differs" in p for p in check.problems)


def test_a_hook_that_never_fires_fails_the_sentinel():
    check = parity.ParityCheck(model="m", layer=1, n_prompts=4, resid_pre_max_rel_err=0.0, kl_max_excess=-1e-6,
                               kl_max_abs_err=0.0, resid_l2_max_rel_err=0.0, zero_kl=0.0, large_kl_min=0.0)
    assert check.problems == [
        "a perturbation of twice the activation's norm reads KL 0 (hook not firing?)"]
