"""Running on a GPU: `--device` / `load_model(..., device=)`.

The CPU half runs everywhere: device names resolve or fail in one line. The CUDA half
runs only where torch sees a GPU: the engine, the optimizer and the parity preflight
on CUDA must agree with the same model on the CPU, and hand back CPU tensors.
"""
import pytest
import torch

from mcis_claims import optimize_directions, sweep, sweep_points
from mcis_claims.engine import resid_pre, sweep_naive
from mcis_claims.errors import ModelLoadError
from mcis_claims.models import resolve_device, wrap_hf_model
from mcis_claims.parity import check_site

from conftest import tiny_gpt2, tiny_llama

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def test_cpu_and_auto_resolve_without_a_gpu():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name, message", [
    ("meta", "not supported"),
    ("tpu", "unknown device"),
    ("gpu!", "unknown device"),
    ("cuda:99", "does not exist" if torch.cuda.is_available() else "sees no CUDA GPU"),
])
def test_bad_devices_get_one_line_errors(name, message):
    with pytest.raises(ModelLoadError, match=message) as info:
        resolve_device(name)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model_pair(request, tokenizer):
    """The same tiny model on the CPU and on CUDA (separate copies of identical weights)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    build = tiny_llama if request.param == "llama" else tiny_gpt2
    cpu = wrap_hf_model(f"tiny-{request.param}", build(), tokenizer)
    gpu = wrap_hf_model(f"tiny-{request.param}", build(), tokenizer, device="cuda")
    return cpu, gpu


def _inputs(model, n=6, T=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, 40, (n, T), generator=g)
    u = torch.randn(n, model.d_model, generator=g)
    return tokens, u / u.norm(dim=-1, keepdim=True), torch.linspace(0, 30, 9)


@needs_cuda
def test_cuda_sweep_matches_cpu_and_returns_cpu_tensors(model_pair):
    cpu, gpu = model_pair
    assert gpu.device.type == "cuda" and gpu.fingerprint == cpu.fingerprint
    tokens, u, radii = _inputs(cpu)
    on_cpu = sweep(cpu, 1, tokens, u, radii, track_mlp=True)
    on_gpu = sweep(gpu, 1, tokens, u, radii, track_mlp=True)
    for name in ("kl", "resid_l2", "final_l2", "clean_margin", "mlp_flips", "top1_changed"):
        assert getattr(on_gpu, name).device.type == "cpu", name
    torch.testing.assert_close(on_gpu.kl, on_cpu.kl, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(on_gpu.resid_l2, on_cpu.resid_l2, rtol=1e-3, atol=1e-4)
    assert on_gpu.kl[:, 0].abs().max() <= 1e-6  # the clean row goes the same path: zero stays zero


@needs_cuda
def test_cuda_engine_equals_naive_bridge_forward_on_cuda(model_pair):
    _, gpu = model_pair
    tokens, u, radii = _inputs(gpu, n=3)
    base = resid_pre(gpu, 1, tokens)[:, -1]
    assert base.device.type == "cpu"
    points = base[:, None] + radii[None, :, None] * u[:, None]
    fast = sweep_points(gpu, 1, tokens, points)
    slow = sweep_naive(gpu, 1, tokens, points)
    assert ((fast.kl - slow.kl).abs() <= 1e-4 * slow.kl + 1e-6).all()


@needs_cuda
def test_cuda_path_callables_see_cpu_activations(model_pair):
    _, gpu = model_pair
    tokens, _, _ = _inputs(gpu, n=3)
    seen = []

    def path(x):
        seen.append(x.device.type)
        return x[:, None] * torch.linspace(1, 0.5, 4)[None, :, None]

    result = sweep_points(gpu, 1, tokens, path)
    assert seen == ["cpu"] and result.kl.shape == (3, 4)


@needs_cuda
def test_cuda_optimizer_and_parity_preflight(model_pair):
    cpu, gpu = model_pair
    tokens, _, _ = _inputs(gpu, n=3)
    found = {m.device.type: optimize_directions(m, 1, tokens, 20.0, restarts=2, steps=3,
                                                generator=torch.Generator().manual_seed(0))
             for m in (cpu, gpu)}
    assert found["cuda"].directions.device.type == "cpu"
    torch.testing.assert_close(found["cuda"].initial_kl, found["cpu"].initial_kl, rtol=1e-3, atol=1e-6)
    check = check_site(gpu, 1, tokens, torch.Generator().manual_seed(0))
    check.raise_if_failed()
