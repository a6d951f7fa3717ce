"""Model resolution: names, paths, random init, and one-line errors for bad input."""
import pytest

from mcis_claims import hf_loading, models
from mcis_claims.errors import ModelLoadError


@pytest.mark.parametrize("alias", ["smollm2-135m", "SmolLM2-135M", "default", " smollm2-135m-instruct "])
def test_embedded_aliases_share_one_canonical_name(alias):
    assert models.canonical_name(alias) == "smollm2-135m"
    assert models.canonical_name(f"random:{alias.strip()}") == "random:smollm2-135m"


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "empty"),
        ("no such model!", "unknown model"),
        ("/definitely/not/here", "does not exist"),
        ("./relative/missing", "does not exist"),
    ],
)
def test_unknown_models_fail_with_one_line(name, message):
    with pytest.raises(ModelLoadError, match=message) as info:
        models.describe(name)
    assert "\n" not in str(info.value)


def test_hub_model_offline_fails_fast_with_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not available locally.*huggingface-cli download gpt2") as info:
        models.describe("gpt2")
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_gguf_is_rejected(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ModelLoadError, match="not a .gguf"):
        models.describe(str(path))


def test_corrupt_gguf_gives_a_clear_error(tmp_path):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(ModelLoadError, match="broken.gguf") as info:
        models.load_model(str(path), reuse=False)
    assert "\n" not in str(info.value)


def test_random_gpt2_describes_gpt2_small_without_network():
    info = models.describe("random:gpt2")
    assert (info.n_layers, info.d_model, info.arch) == (12, 768, "gpt2")


@pytest.mark.slow
def test_random_gpt2_loads_and_is_seeded():
    first = models.load_model("random:gpt2", reuse=False)
    second = models.load_model("random:gpt2", reuse=False)
    assert first.arch == "gpt2" and first.n_layers == 12 and first.d_model == 768
    assert first.fingerprint == second.fingerprint
    weight = first.hf_model.transformer.h[0].mlp.c_fc.weight
    assert weight.equal(second.hf_model.transformer.h[0].mlp.c_fc.weight)
    assert first.to_meta()["source"].startswith("random-init:gpt2")


def test_random_init_fingerprint_is_of_the_weights_not_the_path(tmp_path):
    """The same architecture at two paths gives the same random weights, hence the same fingerprint."""
    import shutil

    from conftest import char_tokenizer, tiny_llama

    here = tmp_path / "a"
    tiny_llama(n_layers=2, d_model=16).save_pretrained(here)
    char_tokenizer(here)
    there = shutil.copytree(here, tmp_path / "elsewhere" / "b")
    first = models.load_model(f"random:{here}", reuse=False)
    second = models.load_model(f"random:{there}", reuse=False)
    assert first.fingerprint == second.fingerprint


def test_wrap_hf_model_exposes_tl_hook_names(tiny_model):
    assert "blocks.1.hook_resid_pre" in tiny_model.bridge.hook_dict or tiny_model.bridge.get_hook_point(
        "blocks.1.hook_resid_pre") is not None
    meta = tiny_model.to_meta()
    assert meta["n_layers"] == 3 and meta["dtype"] == "float32" and len(meta["fingerprint_sha256"]) == 64


def test_a_changed_tensor_in_the_cached_conversion_is_detected_and_rebuilt(tmp_path, monkeypatch, tokenizer):
    """The embedded model's conversion cache, with a tiny Llama standing in for the dequantised GGUF."""
    import json

    import torch
    from safetensors.torch import load_file, save_file

    from conftest import tiny_llama

    monkeypatch.setenv("MCIS_CLAIMS_CACHE", str(tmp_path))
    monkeypatch.setattr(models.assets, "fetch", lambda asset: tmp_path / "stand-in.gguf")
    conversions = []

    def convert(directory, filename, key):
        conversions.append(key)
        return tiny_llama(n_layers=2, d_model=32, seed=0), tokenizer

    monkeypatch.setattr(models, "_load_gguf", convert)
    hf_model, _, _, fingerprint, notes = models._load_embedded(models.EMBEDDED)
    assert len(conversions) == 1 and notes == [] and fingerprint == hf_loading._state_fingerprint(hf_model)
    _, _, _, cached_fingerprint, notes = models._load_embedded(models.EMBEDDED)
    assert len(conversions) == 1 and notes == [] and cached_fingerprint == fingerprint  # read back, verified

    [converted] = [p for p in (tmp_path / "models").iterdir() if p.is_dir()]
    name = "model.layers.0.mlp.down_proj.weight"
    tensors = load_file(converted / "model.safetensors")
    tensors[name] = torch.zeros_like(tensors[name])  # one MLP matrix zeroed, as in the issue
    save_file(tensors, converted / "model.safetensors", metadata={"format": "pt"})

    with pytest.warns(UserWarning, match=r"cached conversion .* has weights sha256 .*changed on disk.*rebuilt"):
        loaded = models.load_model(models.EMBEDDED, reuse=False)
    assert len(conversions) == 2  # rebuilt from the (stand-in) verified GGUF, not used
    assert loaded.fingerprint == fingerprint  # of the weights actually used
    assert torch.equal(load_file(converted / "model.safetensors")[name], hf_model.state_dict()[name])
    assert models._load_embedded(models.EMBEDDED)[4] == [] and len(conversions) == 2  # the cache is whole again

    config = json.loads((converted / "config.json").read_text())
    config["rms_norm_eps"] = 0.5  # same weights, other outputs: the files beside the weights are checked too
    (converted / "config.json").write_text(json.dumps(config))
    notes = models._load_embedded(models.EMBEDDED)[4]
    assert len(conversions) == 3 and notes == [f"warning: cached conversion {converted}: config.json is missing or "
                                               "changed on disk (sha256 differs from the one recorded); rebuilt "
                                               "from the verified GGUF"]
    assert json.loads((converted / "config.json").read_text())["rms_norm_eps"] != 0.5

    # collection reads the shapes from the verified cached config.json, not from the GGUF
    monkeypatch.setattr(models, "_DESCRIBED", {})
    monkeypatch.setattr(models, "_LOADED", {})
    monkeypatch.setattr(models, "_config_for", lambda key: (_ for _ in ()).throw(AssertionError("parsed the GGUF")))
    info = models.describe(models.EMBEDDED)
    assert (info.n_layers, info.d_model, info.max_positions) == (2, 32, 64)


def test_a_truncated_local_model_is_one_line(tmp_path):
    from conftest import char_tokenizer, tiny_llama

    tiny_llama(n_layers=2, d_model=32).save_pretrained(tmp_path)
    char_tokenizer(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="cannot load model") as info:
        models.load_model(str(tmp_path), reuse=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name, canonical", [("random:default@3", "random:smollm2-135m@3"),
                                             ("shuffled:SmolLM2-135M", "shuffled:smollm2-135m"),
                                             ("shuffled:smollm2-135m@0", "shuffled:smollm2-135m")])
def test_control_names_have_one_spelling(name, canonical):
    assert models.canonical_name(name) == canonical


def test_a_control_seed_must_be_a_number():
    with pytest.raises(ModelLoadError, match="must be a seed"):
        models.canonical_name("random:gpt2@abc")


def test_shuffled_control_permutes_block_matrices_only(tmp_path):
    """shuffled:<model>: each 2-D block matrix keeps its values in another order; embeddings, norms untouched."""
    import torch

    from conftest import char_tokenizer, tiny_llama

    here = tmp_path / "tiny"
    tiny_llama(n_layers=2, d_model=16).save_pretrained(here)
    char_tokenizer(here)
    trained = models.load_model(str(here), reuse=False)
    shuffled = models.load_model(f"shuffled:{here}", reuse=False)
    again = models.load_model(f"shuffled:{here}", reuse=False)
    other_seed = models.load_model(f"shuffled:{here}@1", reuse=False)
    before, after = dict(trained.hf_model.named_parameters()), dict(shuffled.hf_model.named_parameters())
    moved = [name for name, p in before.items() if p.ndim == 2 and "embed" not in name and "lm_head" not in name]
    assert moved, "the tiny model has block matrices"
    for name, p in before.items():
        if name in moved:
            assert not torch.equal(p, after[name]), name
            assert torch.equal(p.flatten().sort().values, after[name].flatten().sort().values), name
        else:  # embeddings, norms, biases
            assert torch.equal(p, after[name]), name
    assert shuffled.fingerprint == again.fingerprint != trained.fingerprint != other_seed.fingerprint
    assert shuffled.fingerprint != other_seed.fingerprint
    assert shuffled.to_meta()["source"].startswith("shuffled:dir:")


def test_random_control_seed_changes_the_weights(tmp_path):
    from conftest import char_tokenizer, tiny_llama

    here = tmp_path / "tiny"
    tiny_llama(n_layers=2, d_model=16).save_pretrained(here)
    char_tokenizer(here)
    seed0, seed0_again = models.load_model(f"random:{here}", reuse=False), models.load_model(f"random:{here}@0", reuse=False)
    seed2 = models.load_model(f"random:{here}@2", reuse=False)
    assert seed0.fingerprint == seed0_again.fingerprint != seed2.fingerprint
    assert "seed 2" in seed2.to_meta()["source"]
