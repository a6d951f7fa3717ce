"""Model resolution: names, paths, random init, and one-line errors for bad input."""
import pytest

from mcis_claims import models
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
    assert len(conversions) == 1 and notes == [] and fingerprint == models._state_fingerprint(hf_model)
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


def test_a_truncated_local_model_is_one_line(tmp_path):
    from conftest import char_tokenizer, tiny_llama

    tiny_llama(n_layers=2, d_model=32).save_pretrained(tmp_path)
    char_tokenizer(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="cannot load model") as info:
        models.load_model(str(tmp_path), reuse=False)
    assert "\n" not in str(info.value)
