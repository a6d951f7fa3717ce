"""C10's decision on synthetic radii: C10a judges the composition effect (recon_self / composite), so
synthetic bases no different from the bases' own reconstructions are negligible, whatever the real
bases do; C10b's L0 trend is described, not judged."""
import numpy as np
import pytest

from claim_harness import load_claim
from mcis_claims import stats
from mcis_claims.synthetic import l0_trend
from mcis_claims.verdict import decide

N = 96


@pytest.fixture(scope="module")
def c10():
    return load_claim("test_c10_sae_features")


def radii(seed, n=N):
    return np.exp(np.random.default_rng(seed).normal(0.5, 0.4, n))


def verdict(c10, r_recon, r_composite, censored=None):
    """C10a's verdict on recon_self / composite radii, the estimate built as `ClaimCell.paired_ratio`
    builds it from the spec (alternative, level, SESOI), with censoring of recon_self kept."""
    spec, none = c10.SPEC_A, np.zeros(len(r_recon), dtype=bool)
    est = stats.paired_log_ratio(r_recon, r_composite, alternative=spec.alternative, confidence_level=spec.ci_level,
                                 sesoi=spec.sesoi, censored_a=none if censored is None else censored, censored_b=none,
                                 documents=np.arange(len(r_recon)), n_resamples=99, random_state=0)
    return decide(spec, est, family=32).verdict, est


def test_synthetic_equal_to_recon_self_is_negligible(c10):
    r = radii(0)
    # the real bases sit far above both: a big real / synthetic gap that reconstruction alone explains
    got, est = verdict(c10, r, r.copy())
    assert got == "negligible" and est.value == pytest.approx(1.0)


def test_synthetic_within_noise_of_recon_self_is_not_supported(c10):
    r = radii(1)
    jitter = np.exp(np.random.default_rng(2).normal(0, 0.02, N))
    assert verdict(c10, r, r * jitter)[0] in ("negligible", "inconclusive")


def test_a_composition_effect_is_supported_and_a_reverse_one_reversed(c10):
    r = radii(3)
    assert verdict(c10, 1.6 * r, r)[0] == "supported"
    assert verdict(c10, r / 1.6, r)[0] == "reversed"


def test_censored_recon_self_radii_count_against_the_claim(c10):
    r = radii(4)
    censored = np.zeros(N, dtype=bool)
    censored[: N // 2] = True  # half of recon_self never crossed: only lower bounds, no evidence for H1
    got, _ = verdict(c10, r, r, censored=censored)
    assert got != "supported"


def test_l0_trend_is_described():
    rng = np.random.default_rng(5)
    base = np.exp(rng.normal(0, 0.1, 40))
    rising = l0_trend([8, 16, 64], [0.5 * base, 0.7 * base, 0.9 * base])
    assert rising["spearman_l0_vs_median"] == pytest.approx(1.0)
    assert rising["medians_with_l0"] == "increasing" and rising["fraction_of_bases_rising_with_l0"] == 1.0
    mixed = l0_trend([8, 16, 64], [0.7 * base, 0.5 * base, 0.9 * base])
    assert mixed["medians_with_l0"] == "not monotone" and mixed["spearman_l0_vs_median"] == pytest.approx(0.5)
