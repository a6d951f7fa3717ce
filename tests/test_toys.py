"""C11's toy models: deterministic training, the cache, the plateau read-out, and a claim that can pass."""

import numpy as np
import pytest
import torch

from claim_harness import load_claim
from mcis_claims import toys
from mcis_claims.errors import InputError
from mcis_claims.verdict import decide

SHORT = toys.Training(steps=60, batch=64, n_eval=500)


def test_same_seed_same_weights_and_stack_independence():
    specs = [toys.ToySpec(4, 0.3, 2), toys.ToySpec(4, 0.0, 5)]
    first, again = toys.train_toys(specs, SHORT), toys.train_toys(specs, SHORT)
    for a, b in zip(first, again):
        assert torch.equal(a.W, b.W) and torch.equal(a.b, b.b)
    alone = toys.train_toys([specs[1]], SHORT)[0]  # trained without its stack-mate
    assert torch.allclose(alone.W, first[1].W, atol=1e-5) and torch.allclose(alone.b, first[1].b, atol=1e-5)
    other = toys.train_toys([toys.ToySpec(4, 0.3, 3)], SHORT)[0]
    assert not torch.allclose(other.W, first[0].W)


def test_names_round_trip_and_bad_inputs_are_one_line():
    spec = toys.ToySpec.parse("toy:superposition=4,theta=0.3,seed=2")
    assert (spec.superposition, spec.theta, spec.seed, spec.n_hidden) == (4.0, 0.3, 2, 10)
    assert spec.name == "toy:superposition=4,theta=0.3,seed=2"
    assert toys.ToySpec(0.5, 0, 1).n_hidden == 80
    for bad, match in ((lambda: toys.ToySpec(3, 0.3, 0), "whole number"), (lambda: toys.ToySpec(4, 1.5, 0), "theta"),
                       (lambda: toys.ToySpec(4, 0.3, -1), "seed"), (lambda: toys.ToySpec.parse("toy:4"), "toy name")):
        with pytest.raises(InputError, match=match) as info:
            bad()
        assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="one hidden size"):
        toys.train_toys([toys.ToySpec(4, 0, 0), toys.ToySpec(0.5, 0, 0)], SHORT)


def test_cache_round_trip_is_bitwise_and_corruption_retrains(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = toys.ToySpec(4, 0.3, 1)
    trained = toys.load_or_train([spec], SHORT)[0]
    path = toys.toy_path(spec, SHORT)
    assert path.exists() and path.suffix == ".safetensors" and trained.report["cached"] is False
    loaded = toys.load_or_train([spec], SHORT)[0]
    assert torch.equal(loaded.W, trained.W) and loaded.report["cached"] is True
    assert loaded.report["heldout_fve"] == trained.report["heldout_fve"]
    path.write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="delete it"):
        toys.load_toy(path)
    assert torch.equal(toys.load_or_train([spec], SHORT)[0].W, trained.W)  # retrained, same weights
    # a file that reads but whose weights changed after writing is caught by the recorded sha256
    from safetensors.torch import load_file, save_file

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    tensors["W"][0, 0] += 1.0
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(InputError, match="sha256"):
        toys.load_toy(path)
    assert torch.equal(toys.load_or_train([spec], SHORT)[0].W, trained.W)
    assert not list(path.parent.glob("*.tmp"))  # atomic writes leave no temporary files


def test_training_report_says_whether_it_learned():
    toy = toys.train_toys([toys.ToySpec(0.5, 0.0, 0)], toys.Training(steps=400, batch=256, n_eval=2000))[0]
    report = toy.report
    assert report["heldout_fve"] > 0.9 and report["learned"]
    assert report["final_train_loss"] < report["first_train_loss"]
    assert report["features_represented"] == 40


def linear_toy(bias: float) -> toys.ToyModel:
    """W = I (40 features in 40 dims): with a large positive bias every unit stays active, so the
    read-out is exactly linear and real and Gaussian bases must cross at the same radius."""
    return toys.ToyModel(toys.ToySpec(1, 0.0, 0), torch.eye(40), torch.full((40,), bias))


def test_a_linear_readout_has_no_plateau():
    result = toys.plateau(linear_toy(3.0), n_bases=64, n_fit=512, threshold_rel=0.01)
    assert result.ratio == pytest.approx(1.0, abs=1e-3)
    assert not result.censored_real.any() and not result.censored_gaussian.any()
    again = toys.plateau(linear_toy(3.0), n_bases=64, n_fit=512, threshold_rel=0.01)
    assert np.array_equal(result.radius_real, again.radius_real)  # seeded from the toy's name


def fake_design(ratio_of) -> toys.ToyDesign:
    """A design whose plateau ratios are planted: ratio_of(superposition, theta, seed) -> ratio."""
    plateaus, models = {}, {}
    for s in (0.5, 4.0):
        for t in (0.0, 0.3):
            for seed in range(10):
                spec = toys.ToySpec(s, t, seed)
                r = np.full(16, ratio_of(s, t, seed))
                plateaus[spec] = toys.Plateau(spec.name, r, np.ones(16), np.zeros(16), np.zeros(16),
                                              np.linspace(0, 1, 5), np.zeros(5), np.zeros(5), 0.1)
                models[spec] = None
    return toys.ToyDesign((0.5, 4.0), (0.0, 0.3), tuple(range(10)), models, plateaus, {})


def c11_specs():
    return load_claim("test_c11_plateaus_without_superposition")


def judged(design, module, family=36):
    from mcis_claims import stats

    task_a, task_b, _ = design.pairs("theta")
    sup_a, sup_b, _ = design.pairs("superposition")
    task = stats.paired_log_ratio(task_a, task_b, alternative="greater", sesoi=module.SPEC_TASK.sesoi)
    sup = stats.equivalence_log_ratio(sup_a, sup_b, margin=module.MARGIN, alpha=module.SPEC_SUPERPOSITION.alpha)
    return (decide(module.SPEC_TASK, task, family=family).verdict,
            decide(module.SPEC_SUPERPOSITION, sup, family=family).verdict)


def test_c11_is_supported_in_a_world_where_chan_is_right_and_fails_where_superposition_matters():
    module = c11_specs()
    noise = np.random.default_rng(0).normal(0, 0.03, 40)

    def chan(s, t, seed):  # a task effect of 1.6, no superposition effect
        return (1.6 if t > 0 else 1.0) * np.exp(noise[seed + (20 if s > 1 else 0) + (10 if t > 0 else 0)])

    def mcis(s, t, seed):  # a superposition effect of 1.9, no task effect (what the toys show)
        return (1.9 if s > 1 else 1.0) * np.exp(noise[seed + (20 if s > 1 else 0) + (10 if t > 0 else 0)])

    assert judged(fake_design(chan), module) == ("supported", "supported")
    task, sup = judged(fake_design(mcis), module)
    assert task in ("negligible", "reversed") and sup in ("negligible", "reversed")


def test_design_pairs_each_toy_once_per_effect():
    design = fake_design(lambda s, t, seed: 1 + s + 10 * t + 100 * seed)
    a, b, units = design.pairs("theta")
    assert len(units) == 20 and len(set(units)) == 20
    assert np.allclose(a - b, 3.0)  # theta 0.3 vs 0 at the same superposition and seed
    a, b, units = design.pairs("superposition")
    assert np.allclose(a - b, 3.5) and units[0] == "theta=0,seed=0"
    with pytest.raises(InputError, match="factor"):
        design.pairs("seed")
