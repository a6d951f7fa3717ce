"""Corpora and prompt sampling: real text, distinct windows, seeded, hashed."""
import numpy as np
import pytest

from mcis_claims.errors import CorpusError
from mcis_claims.prompts import load_corpus, sample_prompts


@pytest.fixture
def text_folder(tmp_path):
    (tmp_path / "a.txt").write_text("The quick brown fox jumps over the lazy dog, " +
                                    " ".join(f"then {i} more" for i in range(60)))
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.txt").write_text("Pack my box with five dozen liquor jugs, " + " ".join(f"{i} jugs" for i in range(60)))
    (tmp_path / "ignored.md").write_text("not a txt file")
    return tmp_path


def test_folder_corpus_reads_txt_files_sorted_and_hashes_them(text_folder):
    corpus = load_corpus(str(text_folder))
    assert len(corpus.documents) == 2 and corpus.documents[0].startswith("The quick")
    assert corpus.sha256 == load_corpus(str(text_folder)).sha256
    (text_folder / "a.txt").write_text("changed text " * 50)
    assert load_corpus(str(text_folder)).sha256 != corpus.sha256


def test_windows_are_distinct_fixed_length_and_seeded(text_folder, tokenizer):
    corpus = load_corpus(str(text_folder))
    first = sample_prompts(corpus, tokenizer, 50, length=10, seed=3)
    again = sample_prompts(corpus, tokenizer, 50, length=10, seed=3)
    other = sample_prompts(corpus, tokenizer, 50, length=10, seed=4)
    assert first.tokens.shape == (50, 10)
    assert first.tokens.equal(again.tokens) and first.tokens_sha256 == again.tokens_sha256
    assert first.tokens_sha256 != other.tokens_sha256
    windows = set(zip(first.document.tolist(), first.offset.tolist()))
    assert len(windows) == 50  # sampled without replacement
    for row, d, o in zip(first.tokens, first.document, first.offset):  # each window is real text at its offset
        ids = tokenizer(corpus.documents[d], add_special_tokens=False)["input_ids"]
        assert row.tolist() == ids[o : o + 10]


def test_repeated_text_gives_each_window_once(tmp_path, tokenizer):
    (tmp_path / "a.txt").write_text("abcdefghij" * 30)  # 30 windows of 10 characters, one content
    (tmp_path / "b.txt").write_text("klmnopqrst" + "abcdefghij")
    corpus = load_corpus(str(tmp_path))
    prompts = sample_prompts(corpus, tokenizer, 2, length=10, seed=0)
    assert sorted(map(tuple, prompts.tokens.tolist())) == sorted(
        tuple(tokenizer(w, add_special_tokens=False)["input_ids"]) for w in ("abcdefghij", "klmnopqrst"))
    with pytest.raises(CorpusError, match="yields 2 windows"):
        sample_prompts(corpus, tokenizer, 3, length=10, seed=0)


def test_bos_is_counted_in_the_prompt_length(text_folder, tokenizer):
    prompts = sample_prompts(load_corpus(str(text_folder)), tokenizer, 5, length=10, prepend_bos=True)
    assert prompts.tokens.shape == (5, 10)
    assert (prompts.tokens[:, 0] == tokenizer.bos_token_id).all()
    assert prompts.to_meta()["prepend_bos"] is True


def test_pydoc_corpus_ships_with_python(tokenizer):
    corpus = load_corpus("pydoc")
    assert len(corpus.documents) > 50
    assert len(sample_prompts(corpus, tokenizer, 2000, seed=0)) == 2000


def test_subset_keeps_provenance(text_folder, tokenizer):
    prompts = sample_prompts(load_corpus(str(text_folder)), tokenizer, 20, seed=1)
    part = prompts.subset(np.arange(5, 10))
    assert part.tokens.equal(prompts.tokens[5:10]) and part.offset.tolist() == prompts.offset[5:10].tolist()


@pytest.mark.parametrize("content", ["", "   \n\n  "])
def test_empty_corpus_is_an_error(tmp_path, content):
    (tmp_path / "empty.txt").write_text(content)
    with pytest.raises(CorpusError, match="no text"):
        load_corpus(str(tmp_path))


def test_missing_corpus_and_too_few_windows(tmp_path, tokenizer):
    with pytest.raises(CorpusError, match="not a known name"):
        load_corpus(str(tmp_path / "nope"))
    (tmp_path / "short.txt").write_text("only a few characters")
    with pytest.raises(CorpusError, match="windows"):
        sample_prompts(load_corpus(str(tmp_path / "short.txt")), tokenizer, 100)


def test_hf_dataset_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CorpusError, match="cannot load dataset") as info:
        load_corpus("hf:surely-not-cached/dataset")
    assert "\n" not in str(info.value)
