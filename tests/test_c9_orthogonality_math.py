"""The maths behind C9: a random unit vector's component along a fixed unit w has RMS 1/sqrt(d).

For u uniform on the sphere in R^d, X = <u, w>^2 ~ Beta(1/2, (d-1)/2): E[X] = 1/d exactly and
Var[X] = 2(d-1) / (d^2 (d+2)). The mean of X over N draws therefore has relative standard
error sqrt(2(d-1) / ((d+2) N)) < sqrt(2/N), and RMS = sqrt(mean X) has (delta method) half
of that. The test allows 5 standard errors: a false alarm has probability ~6e-7 per example.
"""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

DRAWS = 4000
SIGMAS = 5.0


def rms_tolerance(d: int, n: int = DRAWS) -> float:
    """SIGMAS standard errors of RMS * sqrt(d), from Var[<u, w>^2] for uniform u."""
    relative_se_of_mean = math.sqrt(2 * (d - 1) / ((d + 2) * n))
    return SIGMAS * 0.5 * relative_se_of_mean


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


@settings(max_examples=40)
@given(d=st.integers(16, 2048), seed=st.integers(0, 2**31 - 1))
def test_random_unit_vector_moves_a_fixed_readoff_by_one_over_sqrt_d(d, seed):
    g = torch.Generator().manual_seed(seed)
    w = unit(torch.randn(d, generator=g, dtype=torch.float64))  # the fixed read-off direction
    u = unit(torch.randn(DRAWS, d, generator=g, dtype=torch.float64))  # isotropic unit perturbations
    rms = (u @ w).pow(2).mean().sqrt().item()
    assert abs(rms * math.sqrt(d) - 1) <= rms_tolerance(d), (rms * math.sqrt(d), rms_tolerance(d))


@given(d=st.integers(16, 2048), seed=st.integers(0, 2**31 - 1))
def test_a_perturbation_along_the_readoff_moves_it_fully(d, seed):
    w = unit(torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    assert abs((w @ w).item() - 1) <= 1e-12


def test_the_tolerance_is_a_sampling_error_not_a_fudge():
    # sqrt(2/N)/2 * 5 with N = 4000: about 0.056 for large d; tighter for small d
    assert rms_tolerance(2048) < 0.06
    assert rms_tolerance(16) < rms_tolerance(2048)
