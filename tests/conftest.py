"""Fixtures for the library's own tests: tiny random models that build in milliseconds.

The tiny models use a character-level tokenizer built in memory, so no test below
the `slow` marker needs the network, the registry or the embedded model.
"""
import os
import string

import pytest
import torch
import torch._dynamo  # noqa: F401  (see below)
from hypothesis import settings

from mcis_claims.models import wrap_hf_model

pytest_plugins = ["pytester"]
# torch._dynamo registers a C++ op library when first imported (transformers imports it lazily). An
# in-process pytester run drops the modules first imported inside it, and importing them again
# would register the library twice: so it is imported here, before any such run.

# Deterministic property tests in CI (no flaky seeds, no deadlines on a shared 2-core box).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

VOCAB = ["<pad>", "<bos>", "<unk>", *string.ascii_letters, *string.digits, *" .,;:!?'-\n"]


def char_tokenizer(directory):
    """A character-level tokenizer, saved and reloaded from disk (TransformerBridge re-reads it by path)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    model = models.WordLevel({c: i for i, c in enumerate(VOCAB)}, unk_token="<unk>")
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", unk_token="<unk>",
                            pad_token="<pad>").save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory)


def tiny_llama(n_layers=3, d_model=64, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(VOCAB), hidden_size=d_model, intermediate_size=2 * d_model,
                      num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=64, rope_theta=10000.0, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).float()


def tiny_gpt2(n_layers=3, d_model=64, seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=len(VOCAB), n_embd=d_model, n_layer=n_layers, n_head=4, n_positions=64)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg).float()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny Llama (3 layers, d 32, 64 positions) with a character tokenizer: a `--models DIR`."""
    directory = tmp_path_factory.mktemp("tiny-llama-model")
    tiny_llama(n_layers=3, d_model=32).save_pretrained(directory)
    char_tokenizer(directory)
    return directory


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return char_tokenizer(tmp_path_factory.mktemp("char-tokenizer"))


@pytest.fixture(scope="session", params=["llama", "gpt2"])
def tiny_model(request, tokenizer):
    build = tiny_llama if request.param == "llama" else tiny_gpt2
    return wrap_hf_model(f"tiny-{request.param}", build(), tokenizer)


@pytest.fixture(scope="session")
def embedded_model():
    from mcis_claims import load_model

    return load_model("smollm2-135m")
