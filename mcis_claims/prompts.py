"""Corpora of real text -> fixed-length token prompts, sampled with a seed.

The published experiments cut real text into 10-token prompts and perturb the last
position. Windows never cross a document boundary, are non-overlapping, and are
sampled without replacement, so every prompt is a distinct piece of real text.
Each prompt is identified by (document index, token offset) and the report stores
those with the corpus hash, so the exact prompts can be rebuilt.

Corpora:
    lee          the Lee background corpus (300 Australian news articles) shipped in
                 the gensim wheel: real, edited prose, fetched from PyPI (the default)
    pydoc        CPython's own `pydoc_data.topics` help texts (technical prose)
    PATH         a text file (one document) or a folder of *.txt files
    hf:NAME[:SPLIT[:COLUMN]]  a Hugging Face dataset, where the hub or a local cache has it
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import assets
from .errors import CorpusError

DEFAULT_CORPUS = "lee"
DEFAULT_LENGTH = 10
HF_MAX_DOCUMENTS = 5000


@dataclass(frozen=True)
class Corpus:
    name: str
    documents: tuple[str, ...]
    sha256: str
    source: str

    def to_meta(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "source": self.source, "documents": len(self.documents)}


@dataclass(frozen=True)
class PromptSet:
    """n prompts of T tokens; the last position is the one perturbed."""

    tokens: torch.Tensor  # (n, T) int64
    document: np.ndarray  # (n,) index into corpus.documents
    offset: np.ndarray  # (n,) token offset of the window inside its document
    corpus: Corpus
    seed: int
    prepend_bos: bool

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def tokens_sha256(self) -> str:
        return hashlib.sha256(self.tokens.numpy().astype("<i8").tobytes()).hexdigest()

    def subset(self, index) -> "PromptSet":
        index = np.asarray(index)
        return PromptSet(self.tokens[torch.as_tensor(index)], self.document[index], self.offset[index],
                         self.corpus, self.seed, self.prepend_bos)

    def to_meta(self) -> dict:
        return {
            "n": len(self),
            "length": int(self.tokens.shape[1]),
            "seed": self.seed,
            "prepend_bos": self.prepend_bos,
            "corpus": self.corpus.to_meta(),
            "tokens_sha256": self.tokens_sha256,
            "windows": [[int(d), int(o)] for d, o in zip(self.document, self.offset)],
        }


def load_corpus(spec: str = DEFAULT_CORPUS) -> Corpus:
    """Resolve a corpus name or path (see module docstring)."""
    if spec == "lee":
        path = assets.fetch(assets.LEE_CORPUS)
        docs = path.read_text(encoding="utf-8").splitlines()
        source = f"{assets.LEE_CORPUS.package}=={assets.LEE_CORPUS.version}/{assets.LEE_CORPUS.member}"
    elif spec == "pydoc":
        from pydoc_data.topics import topics

        docs = [topics[key] for key in sorted(topics)]
        source = "CPython pydoc_data.topics"
    elif spec.startswith("hf:"):
        docs, source = _load_hf_dataset(spec[3:])
    else:
        docs, source = _load_path(spec)
    docs = tuple(d.strip() for d in docs if d and d.strip())
    if not docs:
        raise CorpusError(f"corpus {spec!r} has no text; pass a file or folder with *.txt content")
    return Corpus(name=spec, documents=docs, sha256=_hash_documents(docs), source=source)


def sample_prompts(corpus: Corpus, tokenizer, n: int, *, length: int = DEFAULT_LENGTH, seed: int = 0,
                   prepend_bos: bool = False, requested_as: str = "--n-prompts",
                   one_per_document: int = 0) -> PromptSet:
    """Sample n distinct `length`-token windows of real text (BOS included in the length if prepended).

    Distinct in content, not only in position: a window whose tokens repeat an earlier one
    (the Lee corpus has 214 such 10-token windows) is left out, so no two prompts share an
    activation (a base equal to its target has no direction, and copies are pseudo-replicates).

    The first `one_per_document` prompts (the base prompts, the unit of analysis) come from
    distinct documents, so they are independent; where the corpus has fewer documents the
    rest of them repeat documents at random, and the statistics then treat the document as
    the unit (`PromptSet.document`). The remaining prompts (the fit pool) may share documents.
    """
    if n < 1:
        raise CorpusError(f"need at least one prompt; got n={n}")
    if length < 2:
        raise CorpusError(f"prompt length must be >= 2 tokens; got {length}")
    bos = getattr(tokenizer, "bos_token_id", None)
    if prepend_bos and bos is None:
        raise CorpusError("prepend_bos=True but the tokenizer has no BOS token")
    body = length - int(prepend_bos)
    encoded = [tokenizer(doc, add_special_tokens=False)["input_ids"] for doc in corpus.documents]
    seen, windows = set(), []
    for d, ids in enumerate(encoded):
        for o in range(0, len(ids) - body + 1, body):
            content = tuple(ids[o : o + body])
            if content not in seen:
                seen.add(content)
                windows.append((d, o))
    if len(windows) < n:
        raise CorpusError(
            f"corpus {corpus.name!r} yields {len(windows)} windows of {body} tokens (distinct in content); {n} requested "
            f"({requested_as}). Pass a larger --corpus or a shorter --prompt-length, or lower "
            f"{' / '.join(part.split()[0] for part in requested_as.split(' + '))}"
        )
    rng = np.random.default_rng(seed)
    n_distinct = min(one_per_document, n)
    by_document: dict[int, list[int]] = {}
    for i, (d, _) in enumerate(windows):
        by_document.setdefault(d, []).append(i)
    documents = list(by_document)
    bases = [by_document[documents[j]][rng.integers(len(by_document[documents[j]]))]
             for j in rng.permutation(len(documents))[:n_distinct]]  # one window from each drawn document
    taken = set(bases)
    rest = [i for i in range(len(windows)) if i not in taken]
    others = sorted(rng.choice(len(rest), size=n - len(bases), replace=False).tolist())
    rng.shuffle(others)  # random order, so any prefix of the set is itself a random sample
    chosen = bases + [rest[j] for j in others]
    doc_index = np.array([windows[i][0] for i in chosen], dtype=np.int64)
    offsets = np.array([windows[i][1] for i in chosen], dtype=np.int64)
    rows = [([bos] if prepend_bos else []) + encoded[d][o : o + body] for d, o in zip(doc_index, offsets)]
    return PromptSet(torch.tensor(rows, dtype=torch.long), doc_index, offsets, corpus, seed, prepend_bos)


def prompts_from_text(model, texts, *, length: int | None = None) -> torch.Tensor:
    """Token ids (n, T) for a notebook, tokenized as the claims tokenize their windows.

    Each text is encoded without special tokens, BOS put first where the model wants one
    (`model.prepend_bos`, e.g. Gemma), and its last `length` tokens kept (BOS included in the
    length), so the perturbed last position is each text's last token. `length` defaults to the
    shortest text's; a text too short for it is a one-line error naming it.

    >>> class Tok:
    ...     bos_token_id = 1
    ...     def __call__(self, text, add_special_tokens=False):
    ...         return {"input_ids": [ord(c) for c in text]}
    >>> class Model:
    ...     tokenizer, prepend_bos = Tok(), True
    >>> prompts_from_text(Model(), ["abcd", "xyz"]).tolist()
    [[1, 98, 99, 100], [1, 120, 121, 122]]
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise CorpusError("prompts_from_text: give a non-empty list of non-empty strings")
    tokenizer, bos = model.tokenizer, getattr(model.tokenizer, "bos_token_id", None)
    prepend = bool(getattr(model, "prepend_bos", False))
    if prepend and bos is None:
        raise CorpusError("the model wants a BOS first but its tokenizer has none")
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    shortest = min(len(ids) for ids in encoded) + int(prepend)
    length = shortest if length is None else int(length)
    if length < 2:
        raise CorpusError(f"length={length}: a prompt needs at least 2 tokens")
    body = length - int(prepend)
    for text, ids in zip(texts, encoded):
        if len(ids) < body:
            raise CorpusError(f"text {text[:40]!r} has {len(ids)} tokens, fewer than length={length}"
                              f"{' (with BOS)' if prepend else ''}; pass a smaller length or a longer text")
    return torch.tensor([([bos] if prepend else []) + ids[len(ids) - body:] for ids in encoded], dtype=torch.long)


def _hash_documents(docs) -> str:
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(doc.encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def _load_path(spec: str):
    path = Path(spec).expanduser()
    if not path.exists():
        raise CorpusError(
            f"corpus {spec!r} is not a known name (lee, pydoc, hf:<dataset>) nor an existing file or folder"
        )
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise CorpusError(f"corpus folder {spec} contains no *.txt files")
    docs = []
    for file in files:
        try:
            docs.append(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError) as exc:
            raise CorpusError(f"cannot read corpus file {file}: {exc}") from None
    return docs, f"path:{path.resolve()}"


@contextmanager
def _offline_unless_reachable(reachable: bool):
    """Without a hub, look only in the local cache (the hub client would retry for minutes)."""
    if reachable:
        yield
        return
    import datasets.config
    import huggingface_hub.constants

    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _load_hf_dataset(spec: str):
    name, split, column = (spec.split(":") + [None, None])[:3]
    split = split or "train"
    try:
        import datasets
    except ImportError:
        raise CorpusError("hf: corpora need the `datasets` package (pip install datasets)") from None
    from .models import hub_reachable

    try:
        with _offline_unless_reachable(hub_reachable()):
            data = datasets.load_dataset(name, split=split, streaming=True)
        docs = []
        for row in data:
            key = column or next((k for k in ("text", "content", "document") if k in row), None)
            if key is None:
                raise CorpusError(f"dataset {name}: no text column among {sorted(row)}; use hf:{name}:{split}:<column>")
            docs.append(str(row[key]))
            if len(docs) >= HF_MAX_DOCUMENTS:
                break
    except CorpusError:
        raise
    except Exception as exc:
        offline = os.environ.get("HF_DATASETS_OFFLINE") or os.environ.get("HF_HUB_OFFLINE")
        hint = " (offline mode is set)" if offline else ""
        raise CorpusError(
            f"cannot load dataset {name!r}{hint}: {type(exc).__name__}; without network pass a local "
            f"file or folder of *.txt instead"
        ) from None
    return docs, f"hf:{name}:{split} (first {len(docs)} rows)"
