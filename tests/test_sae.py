"""SAEs (claim C10): SAELens file format (sae.py), training (sae_training.py), synthetic
activations and decoder directions (synthetic.py).

The SAELens layout is checked against directories written by hand here (the documented
cfg.json keys and tensor names), and reconstructions against a numpy computation.
"""
import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mcis_claims import sae as saes
from mcis_claims import sae_training, synthetic
from mcis_claims.activations import SiteStats, nearest_positive_definite
from mcis_claims.errors import InputError, ModelLoadError

D_IN, D_SAE = 12, 40


def random_tensors(seed=0, d_in=D_IN, d_sae=D_SAE):
    g = torch.Generator().manual_seed(seed)
    return {"W_enc": torch.randn(d_in, d_sae, generator=g), "b_enc": 0.3 * torch.randn(d_sae, generator=g),
            "W_dec": torch.randn(d_sae, d_in, generator=g), "b_dec": torch.randn(d_in, generator=g),
            "threshold": torch.rand(d_sae, generator=g)}


def write_saelens(path, cfg, tensors):
    """A SAELens-format directory, by hand: cfg.json + sae_weights.safetensors."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "cfg.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "sae_weights.safetensors"))
    return path


def v6_cfg(architecture, **extra):
    return {"architecture": architecture, "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
            "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
            "meta": {"hook_name": "blocks.1.hook_resid_pre", "model_name": "gpt2"}, **extra}


def numpy_reference(t, x, architecture, k=None):
    W_enc, b_enc, W_dec, b_dec = (t[n].double().numpy() for n in ("W_enc", "b_enc", "W_dec", "b_dec"))
    pre = (x - b_dec) @ W_enc + b_enc
    if architecture == "relu":
        z = np.maximum(pre, 0)
    elif architecture == "jumprelu":
        z = np.where(pre > t["threshold"].double().numpy(), np.maximum(pre, 0), 0.0)
    else:
        z = np.zeros_like(pre)
        top = np.argsort(-pre, axis=-1)[:, :k]
        np.put_along_axis(z, top, np.maximum(np.take_along_axis(pre, top, -1), 0), -1)
    return z, z @ W_dec + b_dec


CASES = {
    "standard": (v6_cfg("standard"), "relu", None),
    "topk_v6": (v6_cfg("topk", k=5), "topk", 5),
    "topk_v5": ({**{k: v for k, v in v6_cfg("standard").items() if k != "meta"}, "hook_name": "blocks.1.hook_resid_pre",
                 "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 5}}, "topk", 5),
    "jumprelu": (v6_cfg("jumprelu"), "jumprelu", None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hand_written_saelens_directory_loads_and_reconstructs(tmp_path, case):
    cfg, architecture, k = CASES[case]
    tensors = random_tensors()
    if architecture != "jumprelu":
        del tensors["threshold"]
    sae = saes.load_sae(write_saelens(tmp_path / case, cfg, tensors))
    assert (sae.architecture, sae.k, sae.d_in, sae.d_sae) == (architecture, k, D_IN, D_SAE)
    assert sae.hook_name == "blocks.1.hook_resid_pre"
    x = np.random.default_rng(1).normal(size=(7, D_IN)) * 2
    z_ref, x_hat_ref = numpy_reference(tensors, x, architecture, k)
    z = sae.encode(torch.tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(z.numpy(), z_ref, atol=1e-4)
    np.testing.assert_allclose(sae(torch.tensor(x, dtype=torch.float32)).numpy(), x_hat_ref, rtol=1e-4, atol=1e-4)
    if architecture == "topk":
        assert int((z > 0).sum(-1).max()) <= k


def test_jumprelu_log_threshold_and_topk_decoder_norm_rescaling_are_folded(tmp_path):
    tensors = random_tensors()
    log = {**{k: v for k, v in tensors.items() if k != "threshold"}, "log_threshold": tensors["threshold"].log()}
    jump = saes.load_sae(write_saelens(tmp_path / "jump", v6_cfg("jumprelu"), log))
    torch.testing.assert_close(jump.threshold, tensors["threshold"])
    del tensors["threshold"]
    rescaled = saes.load_sae(write_saelens(tmp_path / "topk", v6_cfg("topk", k=4, rescale_acts_by_decoder_norm=True),
                                           tensors))
    x = torch.randn(9, D_IN, generator=torch.Generator().manual_seed(2))
    norm = tensors["W_dec"].norm(dim=-1)  # SAELens: topk on pre * ||d||, decode z / ||d||
    pre = ((x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"]) * norm
    values, index = pre.topk(4, dim=-1)
    z = torch.zeros_like(pre).scatter_(-1, index, values.relu()) / norm
    torch.testing.assert_close(rescaled(x), z @ tensors["W_dec"] + tensors["b_dec"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("architecture,k", [("relu", None), ("topk", 3), ("jumprelu", None)])
def test_saved_sae_loads_back_bitwise(tmp_path, architecture, k):
    t = random_tensors(seed=3)
    sae = saes.SAE(t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"], architecture=architecture, k=k,
                   threshold=t["threshold"] if architecture == "jumprelu" else None)
    saes.save_sae(sae, tmp_path / "out", hook_name="blocks.2.hook_resid_pre", extra_cfg={"note": "test"})
    back = saes.load_sae(tmp_path / "out")
    for name in ("W_enc", "b_enc", "W_dec", "b_dec") + (("threshold",) if architecture == "jumprelu" else ()):
        assert torch.equal(getattr(back, name), getattr(sae, name)), name
    assert (back.architecture, back.k, back.hook_name) == (architecture, k, "blocks.2.hook_resid_pre")
    cfg = json.loads((tmp_path / "out" / "cfg.json").read_text())
    assert cfg["architecture"] == {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}[architecture]
    assert (cfg["d_in"], cfg["d_sae"], cfg["meta"]["hook_name"], cfg["mcis_claims"]["note"]) == (
        D_IN, D_SAE, "blocks.2.hook_resid_pre", "test")
    assert back.fingerprint == sae.fingerprint
    # the weights hash: of the file on disk, the same whether loaded, saved or computed afresh
    file_hash = hashlib.sha256((tmp_path / "out" / "sae_weights.safetensors").read_bytes()).hexdigest()
    assert back.weights_sha256 == sae.weights_sha256 == cfg["mcis_claims"]["weights_sha256"] == file_hash
    fresh = saes.SAE(t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"], architecture=architecture, k=k,
                     threshold=t["threshold"] if architecture == "jumprelu" else None)
    assert fresh.weights_sha256 is None and saes.weights_sha256(fresh) == file_hash


def _bad(tmp_path, name, cfg=None, drop=None, change=None, raw_cfg=None, raw_weights=None):
    t = random_tensors()
    del t["threshold"]
    if drop:
        del t[drop]
    t.update(change or {})
    path = write_saelens(tmp_path / name, cfg or v6_cfg("standard"), t)
    if raw_cfg is not None:
        (path / "cfg.json").write_text(raw_cfg)
    if raw_weights is not None:
        (path / "sae_weights.safetensors").write_bytes(raw_weights)
    return path


BAD = {
    "missing_tensor": (dict(drop="b_dec"), "missing tensor b_dec"),
    "gated": (dict(cfg=v6_cfg("gated")), "gated SAEs are not supported"),
    "unknown_architecture": (dict(cfg=v6_cfg("matryoshka")), "unknown architecture 'matryoshka'"),
    "wrong_shape": (dict(change={"W_dec": torch.randn(D_IN, D_SAE)}), "W_dec has shape"),
    "cfg_disagrees": (dict(cfg=v6_cfg("standard", d_in=99)), "cfg.json says"),
    "topk_without_k": (dict(cfg=v6_cfg("topk")), "needs a positive integer k"),
    "nan": (dict(change={"b_enc": torch.full((D_SAE,), float("nan"))}), "b_enc contains NaN"),
    "corrupt_json": (dict(raw_cfg='{"architecture": "standard", '), "corrupt JSON"),
    "corrupt_safetensors": (dict(raw_weights=b"\x00garbage" * 10), "cannot read safetensors"),
    "layer_norm": (dict(cfg=v6_cfg("standard", normalize_activations="layer_norm")), "normalize_activations"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sae_files_give_one_line_errors(tmp_path, case):
    kwargs, message = BAD[case]
    path = _bad(tmp_path, case, **kwargs)
    with pytest.raises(ModelLoadError, match=message) as info:
        saes.load_sae(path)
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not a directory"):
        saes.load_sae(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="missing cfg.json"):
        saes.load_sae(tmp_path / "empty")


# ---------------------------------------------------------------- training on a tiny model

TEXT = ("the cat sat on the mat. a dog ran to the park, then home again! "
        "numbers like 12 and 345 appear; so do questions? yes: often. ")


def documents(n=20):
    return [TEXT[i % 7:] + TEXT * 3 + TEXT[: 5 + i] for i in range(n)]


@pytest.mark.parametrize("kind", ["topk", "relu"])
def test_training_runs_and_reports_quality(tiny_model, kind):
    args = dict(k=4) if kind == "topk" else dict(l1_coefficient=1e-3)
    sae, report = sae_training.train_sae(tiny_model, 1, d_sae=48, tokens_budget=5 * 128, batch_size=128, seed=0,
                                         progress=False, documents=documents(), **args)
    assert (sae.d_in, sae.d_sae, sae.architecture) == (tiny_model.d_model, 48, kind)
    assert report.steps == 5 and report.tokens_seen == 640 and report.hook_name == "blocks.1.hook_resid_pre"
    assert 0 < report.l0 <= (4 if kind == "topk" else 48)
    assert np.isfinite(report.fve) and report.fve <= 1
    assert 0 <= report.dead_fraction <= 1 and report.kl_recon_mean >= 0 and report.n_kl_prompts > 0
    assert report.dropped_first_positions > 0  # position 0 of every window is left out


def test_training_does_not_depend_on_the_thread_count(tiny_model):
    """The host dependence C10 saw (issue 10) was the corpus, not threads: weights are bitwise equal at 1 and 2
    torch threads (harvest and training both), and the report says which corpus it trained on."""
    before = torch.get_num_threads()
    hashes, reports = [], []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            sae, report = sae_training.train_sae(tiny_model, 1, d_sae=48, k=4, tokens_budget=6 * 128,
                                                 batch_size=128, progress=False, documents=documents())
            hashes.append(saes.weights_sha256(sae))
            reports.append(report)
    finally:
        torch.set_num_threads(before)
    assert hashes[0] == hashes[1]
    assert [r.torch_threads for r in reports] == [1, 2]
    assert reports[0].corpus_sha256 == reports[1].corpus_sha256 != ""


def test_the_default_harvest_reads_only_pinned_corpora():
    """CPython's pydoc_data.topics changes with the Python release: it must not feed the default SAEs."""
    assert sae_training.HARVEST_CORPORA == ("lee",) and sae_training.FORMAT_VERSION >= 2


def test_match_norm_keeps_direction_and_takes_the_base_norm():
    g = torch.Generator().manual_seed(0)
    bases, fake = torch.randn(30, 8, generator=g) * 3, torch.randn(30, 8, generator=g)
    out = synthetic.match_norm(fake, bases)
    torch.testing.assert_close(out.norm(dim=-1), bases.norm(dim=-1))
    torch.testing.assert_close(torch.nn.functional.cosine_similarity(out, fake, dim=-1), torch.ones(30))
    with pytest.raises(InputError, match="differ"):
        synthetic.match_norm(fake[:3], bases)


def test_the_input_scale_is_folded_into_the_weights(tiny_model):
    data = sae_training.harvest(tiny_model, 1, documents())
    sae, report = sae_training.train_sae(tiny_model, 1, d_sae=48, k=4, tokens_budget=256, batch_size=128,
                                         progress=False, data=data)
    x = data.heldout[:64]
    x_hat = sae(x)
    # on raw activations the reconstruction is on the activations' own scale: FVE as reported
    fve = 1 - float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert np.isfinite(fve) and report.scale_factor > 0
    assert float(x_hat.norm(dim=-1).median()) == pytest.approx(float(x.norm(dim=-1).median()), rel=0.5)


def test_training_arguments_are_checked(tiny_model):
    with pytest.raises(InputError, match="exactly one of k"):
        sae_training.train_sae(tiny_model, 1, progress=False, documents=documents())
    with pytest.raises(InputError, match="k=0"):
        sae_training.train_sae(tiny_model, 1, k=0, progress=False, documents=documents())


def test_sae_width_must_match_the_model(tiny_model):
    t = random_tensors(d_in=tiny_model.d_model + 1)
    sae = saes.SAE(t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"], architecture="relu")
    with pytest.raises(InputError, match=f"d_in={tiny_model.d_model + 1} but") as info:
        saes.check_site(sae, tiny_model, 1, source="--sae /x")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("hook, layer", [("blocks.3.hook_resid_pre", 3), ("blocks.2.hook_resid_post", 3), (None, None)])
def test_the_hook_says_which_layer_an_sae_reads(tmp_path, hook, layer):
    cfg = v6_cfg("standard", meta={"hook_name": hook} if hook else {})
    path = write_saelens(tmp_path / "sae", cfg, random_tensors())
    assert saes.read_hook_layer(path) == layer


def test_an_sae_at_another_site_is_refused_with_the_layer_to_use(tiny_model):
    t = random_tensors(d_in=tiny_model.d_model)
    sae = saes.SAE(t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"], architecture="relu",
                   cfg={"hook_name": "blocks.0.hook_resid_pre"})
    with pytest.raises(InputError, match="run it with --layers 0"):
        saes.check_site(sae, tiny_model, 1, source="--sae /x")
    sae.cfg = {"hook_name": "blocks.1.hook_mlp_out"}
    with pytest.raises(InputError, match="not a residual-stream site"):
        saes.check_site(sae, tiny_model, 1, source="--sae /x")


# ---------------------------------------------------------------- synthetic activations and decoder directions


def pool_and_sae(seed=0, d_in=16, d_sae=256, n=2000):
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=g)
    sae = saes.SAE(W_dec.T.clone(), -(10 + 8 * torch.rand(d_sae, generator=g)), W_dec, torch.randn(d_in, generator=g),
                   architecture="relu")
    pool = torch.randn(n, d_in, generator=g, dtype=torch.float64) * 1.5
    return sae, pool


def test_single_latent_synthetic_has_the_typical_norm():
    sae, pool = pool_and_sae()
    density = synthetic.latent_density(sae, pool)
    target = float(pool.norm(dim=-1).median())
    x, latent = synthetic.synthetic_single(sae, 50, density, target, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x.double().norm(dim=-1), torch.full((50,), target, dtype=torch.float64),
                               rtol=1e-4, atol=1e-4)
    assert (density[latent] > 0).all()  # only latents seen on real data
    # it is b_dec plus a positive multiple of one decoder row
    step = x.double() - sae.b_dec.double()
    cos = torch.nn.functional.cosine_similarity(step, sae.W_dec[latent].double(), dim=-1)
    torch.testing.assert_close(cos, torch.ones(50, dtype=torch.float64), atol=1e-4, rtol=0)


@pytest.mark.parametrize("match_cosine", [False, True])
def test_composite_swaps_latents_for_density_matched_ones(match_cosine):
    sae, pool = pool_and_sae()
    density = synthetic.latent_density(sae, pool)
    bases = pool[:20]
    out = synthetic.synthetic_composite(sae, bases, density, len(pool), torch.Generator().manual_seed(0),
                                        match_cosine=match_cosine)
    assert out.activations.shape == (20, 16)
    logp = synthetic.log_density(density, len(pool))
    z = sae.encode(bases.float())
    outside = 0
    for i, (old, new) in enumerate(zip(out.original, out.replaced)):
        assert len(old) == len(new) == int((z[i] > 0).sum())  # same L0
        assert not set(old) & set(new) and len(set(new)) == len(new)
        outside += int(((logp[new] - logp[old]).abs() >= 0.1).sum())  # |delta log10 density| < 0.1 ...
        code = torch.zeros(sae.d_sae)
        code[new] = z[i, old]  # same values, new latents
        torch.testing.assert_close(out.activations[i], sae.decode(code))
    total = sum(len(new) for new in out.replaced)
    assert outside == out.fallbacks < 0.1 * total  # ... except the counted fallbacks (no candidate left)


def test_cosine_control_matches_the_originals_cosines_better():
    sae, pool = pool_and_sae(d_sae=512)
    density = synthetic.latent_density(sae, pool)
    bases, dirs = pool[:30], sae.unit_decoder()

    def mismatch(out):
        errors = []
        for old, new in zip(out.original, out.replaced):
            if len(old) > 1:
                a, b = dirs[old] @ dirs[old].T, dirs[new] @ dirs[new].T
                errors.append(float((a - b).pow(2).mean()))
        return np.mean(errors)

    plain = synthetic.synthetic_composite(sae, bases, density, len(pool), torch.Generator().manual_seed(0))
    controlled = synthetic.synthetic_composite(sae, bases, density, len(pool), torch.Generator().manual_seed(0),
                                               match_cosine=True)
    assert mismatch(controlled) < 0.5 * mismatch(plain)


def test_recon_other_is_the_reconstruction_of_a_pool_activation():
    sae, pool = pool_and_sae()
    x, index = synthetic.synthetic_recon_other(sae, pool, 10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, sae(pool[index].float()))


def fake_stats(pool):
    cov, clipped = nearest_positive_definite(torch.cov(pool.T))
    return SiteStats(layer=1, site="blocks.1.hook_resid_pre", activations=pool, mean=pool.mean(0), cov=cov,
                     cov_factor=torch.linalg.cholesky(cov), median_norm=float(pool.norm(dim=-1).median()),
                     eigen_clipped=clipped)


def test_decoder_directions_are_unit_rows_of_the_right_latents():
    sae, pool = pool_and_sae()
    stats = fake_stats(pool)
    bases = pool[(sae.encode(pool.float()) > 0).any(-1)][:8]
    z, density = sae.encode(bases.float()), synthetic.latent_density(sae, pool)
    dirs = sae.unit_decoder()
    for which in ("active", "inactive"):
        kind = synthetic.sae_decoder(sae, which)
        u = kind.sample(stats, 8, 3, torch.Generator().manual_seed(0), bases=bases)
        assert u.shape == (8, 3, 16)
        torch.testing.assert_close(u.norm(dim=-1), torch.ones(8, 3, dtype=torch.float64))
        latent = (u @ dirs.T).argmax(-1)  # which decoder row each direction is
        for i in range(8):
            active = z[i, latent[i]] > 0
            assert active.all() if which == "active" else (~active).all() and (density[latent[i]] > 0).all()
    assert repr(synthetic.sae_decoder(sae)).startswith("sae_decoder('relu-d256@")
    dead = density == 0
    if not dead.any():
        with pytest.raises(InputError, match="no such latent"):
            synthetic.sae_decoder(sae, "dead").sample(stats, 2, 1, torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match="which='alive'"):
        synthetic.sae_decoder(sae, "alive")


# ---------------------------------------------------------------- the SAE cache: verified, atomic, one build


def cheap_default_training(monkeypatch):
    """default_sae's harvest and training, shrunk to seconds on the tiny models; counts trainings."""
    real_harvest, real_train, trained = sae_training.harvest, sae_training.train_sae, []
    monkeypatch.setattr(sae_training, "harvest", lambda model, layer: real_harvest(model, layer, documents()))

    def train(*args, **kwargs):
        trained.append(kwargs.get("k"))
        return real_train(*args, tokens_budget=512, batch_size=128, **kwargs)

    monkeypatch.setattr(sae_training, "train_sae", train)
    return trained


def test_the_default_sae_cache_is_verified_and_a_changed_file_retrained(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MCIS_CLAIMS_CACHE", str(tmp_path))
    trained = cheap_default_training(monkeypatch)
    first = sae_training.default_sae(tiny_model, 1, l0_target=4, progress=False)
    assert trained == [4] and first.cfg["mcis_claims"]["weights_sha256"]
    assert sae_training.default_sae(tiny_model, 1, l0_target=4, progress=False).fingerprint == first.fingerprint
    assert trained == [4]  # the second call loaded the cache
    path = sae_training.default_sae_dir(tiny_model, 1, 4)
    t = {k: v.clone() for k, v in {"W_enc": first.W_enc, "b_enc": first.b_enc, "W_dec": first.W_dec,
                                   "b_dec": first.b_dec}.items()}
    t["W_dec"][0] = 0.0  # one decoder row changed on disk, cfg.json untouched
    save_file(t, str(path / saes.WEIGHTS_FILENAME))
    with pytest.raises(ModelLoadError, match="sha256 .* is not the .* that cfg.json records"):
        saes.load_sae(path)
    with pytest.warns(UserWarning, match="cached SAE unusable: .*sha256.*; training it again"):
        again = sae_training.default_sae(tiny_model, 1, l0_target=4, progress=False)
    assert trained == [4, 4] and again.fingerprint == first.fingerprint  # training is deterministic


TWO_BUILDERS = r"""
import json, os, sys, time
sys.path.insert(0, {tests!r})
from transformers import AutoTokenizer
from conftest import tiny_llama
from test_sae import documents
from mcis_claims import sae_training
from mcis_claims.models import wrap_hf_model

model = wrap_hf_model("tiny-llama", tiny_llama(n_layers=3, d_model=32), AutoTokenizer.from_pretrained({tok!r}))
real_harvest, real_train, trained = sae_training.harvest, sae_training.train_sae, []
sae_training.harvest = lambda m, layer: real_harvest(m, layer, documents())
def train(*args, **kwargs):
    trained.append(kwargs["k"])
    time.sleep(2)  # hold the lock long enough that the other process surely asks for it meanwhile
    return real_train(*args, tokens_budget=512, batch_size=128, **kwargs)
sae_training.train_sae = train
open(os.path.join({ready!r}, str(os.getpid())), "w").close()
while len(os.listdir({ready!r})) < 2:  # both processes reach default_sae together
    time.sleep(0.01)
sae = sae_training.default_sae(model, 1, l0_target=4, progress=False)
print(json.dumps({{"trained": len(trained), "fingerprint": sae.fingerprint}}))
"""


def test_two_processes_that_need_the_same_sae_train_it_once(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import char_tokenizer

    char_tokenizer(tmp_path / "tok")
    (tmp_path / "ready").mkdir()
    script = TWO_BUILDERS.format(tests=str(Path(__file__).parent), tok=str(tmp_path / "tok"),
                                 ready=str(tmp_path / "ready"))
    env = {**os.environ, "MCIS_CLAIMS_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(r["trained"] for r in results) == [0, 1]  # one trained; the other waited, then loaded it
    assert results[0]["fingerprint"] == results[1]["fingerprint"]
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]


def test_concurrent_writers_and_a_reader_never_see_a_broken_sae(tmp_path):
    """The issue's probe (two writers and a reader on one path), as threads for 3 s: every load
    returns one of the two SAEs written, whole; no OSError, no FileNotFoundError."""
    import threading
    import time

    def make(seed):
        t = random_tensors(seed=seed)
        return saes.SAE(t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"], architecture="relu")

    candidates = [make(1), make(2)]
    path = tmp_path / "shared-sae"
    saes.save_sae(candidates[0], path)
    expected = {s.fingerprint for s in candidates}
    errors, loads, stop = [], [], time.monotonic() + 3.0

    def write(sae):
        while time.monotonic() < stop:
            try:
                saes.save_sae(sae, path)
            except Exception as exc:  # noqa: BLE001 - the test collects every failure
                errors.append(f"write: {type(exc).__name__}: {exc}")

    def read():
        while time.monotonic() < stop:
            try:
                loads.append(saes.load_sae(path).fingerprint)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"read: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=write, args=(s,)) for s in candidates] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(loads) > 20 and set(loads) <= expected
    assert saes.load_sae(path).fingerprint in expected  # the pair left on disk is consistent
