"""The seven text classification tasks of "Evolutionary-Neural Hybrid Agents for Architecture
Search" (Maziarz et al., arXiv:1811.09828), Section 6.3 and Table 9, read from the data registry.

Every loader parses its source with the standard library and returns a single-label task with
a train / validation / test split:

- a source that ships all three splits keeps them (News Aggregator);
- a source that ships train and test keeps its test split (20 Newsgroups "bydate", Reuters
  ModApte). One ninth of its training documents, drawn with the split seed, become the validation
  split, which keeps the proportions near 80/10/10;
- every other source gets a seeded 80/10/10 split (SMS Spam, McDonald's, Brown, Consumer
  Complaints).

Multi-label sources become single-label tasks: a McDonald's review keeps the first complaint type
listed for it, and a Reuters story keeps the first of its ModApte topics. The paper's Table 9 counts
(for example 8,630 / 1,079 / 1,079 for Reuters) suggest it re-split every dataset at random, so the
test sets of 20 Newsgroups and Reuters here (split by date) are harder than the paper's.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from seqopt.data.files import locate

SPLITS = ("train", "validation", "test")
DEFAULT_SPLIT_SEED = 0


@dataclass(frozen=True)
class TextDataset:
    """A single-label text classification task with its split.

    Attributes:
        name: registry name of the task (a key of ``DATASETS``).
        texts: every document, in the source's order.
        labels: class index of each document, int64 of shape ``(len(texts),)``.
        class_names: name of each class index.
        splits: document indices of "train", "validation" and "test"; disjoint.
    """

    name: str
    texts: tuple[str, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]
    splits: dict[str, np.ndarray]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split_texts(self, split: str) -> list[str]:
        """Return the documents of one split."""
        return [self.texts[i] for i in self._indices(split)]

    def split_labels(self, split: str) -> np.ndarray:
        """Return the class indices of one split."""
        return self.labels[self._indices(split)]

    def _indices(self, split: str) -> np.ndarray:
        if split not in self.splits:
            raise KeyError(f"Unknown split {split!r}; the splits are {list(self.splits)}.")
        return self.splits[split]


@dataclass(frozen=True)
class DatasetInfo:
    """Description of a task and the location of its data.

    Attributes:
        registry_name: dataset name in the data registry (``seqopt.data``), also its mirror folder.
        files: the files of that dataset the loader reads.
        title: the paper's name of the dataset.
        task: one sentence on how the source becomes a single-label task.
        loader: function of the split seed that builds the ``TextDataset``.
    """

    registry_name: str
    files: tuple[str, ...]
    title: str
    task: str
    loader: Callable[[int], TextDataset]


# Raw documents and labels, before the class index is assigned.
_Documents = tuple[list[str], list[str]]


def _encode_labels(names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map label names to indices in sorted order, so that class indices do not depend on file order."""
    class_names = tuple(sorted(set(names)))
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[name] for name in names], dtype=np.int64), class_names


def _random_split(count: int, seed: int, fractions: tuple[float, float] = (0.8, 0.1)) -> dict[str, np.ndarray]:
    """Split ``range(count)`` into 80/10/10 percent with a generator seeded by ``seed``."""
    order = np.random.default_rng(seed).permutation(count)
    num_train = round(fractions[0] * count)
    num_validation = round(fractions[1] * count)
    return {
        "train": np.sort(order[:num_train]),
        "validation": np.sort(order[num_train:num_train + num_validation]),
        "test": np.sort(order[num_train + num_validation:]),
    }


def _carve_validation(train: np.ndarray, test: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Keep a source's test split and draw one ninth of its training documents as validation."""
    order = np.random.default_rng(seed).permutation(train)
    num_validation = round(len(train) / 9)
    return {"train": np.sort(order[num_validation:]), "validation": np.sort(order[:num_validation]),
            "test": np.sort(test)}


def _build(name: str, texts: list[str], label_names: list[str], splits: dict[str, np.ndarray]) -> TextDataset:
    labels, class_names = _encode_labels(label_names)
    return TextDataset(name=name, texts=tuple(texts), labels=labels, class_names=class_names, splits=splits)


def _path(dataset: str, filename: str) -> Path:
    return locate(dataset, filename)


# SMS Spam Collection: "label<TAB>message" lines, labels ham and spam.
def load_sms_spam(split_seed: int = DEFAULT_SPLIT_SEED) -> TextDataset:
    texts, names = [], []
    with open(_path("sms-spam-collection", "SMSSpamCollection"), encoding="utf-8") as f:
        for line in f.read().splitlines():
            if not line.strip():
                continue
            label, text = line.split("\t", 1)
            names.append(label)
            texts.append(text)
    return _build("sms_spam", texts, names, _random_split(len(texts), split_seed))


# McDonald's: the CSV's policies_violated field lists complaint types separated by line breaks.
def load_mcdonalds(split_seed: int = DEFAULT_SPLIT_SEED) -> TextDataset:
    texts, names = [], []
    with open(_path("mcdonalds-sentiment", "McDonalds-Yelp-Sentiment-DFE.csv"), encoding="latin-1", newline="") as f:
        for row in csv.DictReader(f):
            types = [t.strip() for t in row["policies_violated"].splitlines() if t.strip()]
            if not types:  # 54 reviews were never labelled
                continue
            names.append(types[0])
            texts.append(row["review"])
    return _build("mcdonalds", texts, names, _random_split(len(texts), split_seed))


class _ReutersParser(HTMLParser):
    """Collect LEWISSPLIT, TOPICS, TITLE and BODY of each <REUTERS> element of an SGML file."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.documents: list[tuple[str, list[str], str]] = []
        self._split = ""
        self._topics: list[str] = []
        self._text: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "reuters":
            attributes = dict(attrs)
            has_topics = attributes.get("topics") == "YES"
            self._split = (attributes.get("lewissplit") or "") if has_topics else ""
            self._topics, self._text, self._stack = [], [], []
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "reuters":
            self.documents.append((self._split, self._topics, " ".join(self._text)))
        while self._stack and self._stack.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if "topics" in self._stack and self._stack[-1] == "d":
            self._topics.append(data.strip())
        elif self._stack and self._stack[-1] in ("title", "body"):
            self._text.append(data.strip())


def _reuters_documents() -> list[tuple[str, list[str], str]]:
    parser = _ReutersParser()
    with tarfile.open(_path("reuters-21578", "reuters21578_sgm.tar.gz")) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.name.endswith(".sgm"):
                handle = archive.extractfile(member)
                if handle is not None:
                    parser.feed(handle.read().decode("latin-1"))
    parser.close()
    return parser.documents


# Reuters-21578, ModApte split: LEWISSPLIT TRAIN or TEST with TOPICS="YES", restricted to the 90
# topics that have at least one training and one test story (the usual "ModApte 90" task).
def load_reuters(split_seed: int = DEFAULT_SPLIT_SEED) -> TextDataset:
    documents = [d for d in _reuters_documents() if d[0] in ("TRAIN", "TEST") and d[1]]
    train_topics = {t for split, topics, _ in documents if split == "TRAIN" for t in topics}
    test_topics = {t for split, topics, _ in documents if split == "TEST" for t in topics}
    kept_topics = train_topics & test_topics
    texts, names, is_test = [], [], []
    for split, topics, text in documents:
        usable = [t for t in topics if t in kept_topics]
        if usable:
            texts.append(text)
            names.append(usable[0])
            is_test.append(split == "TEST")
    mask = np.array(is_test)
    splits = _carve_validation(np.flatnonzero(~mask), np.flatnonzero(mask), split_seed)
    return _build("reuters", texts, names, splits)


# Brown corpus: 500 "word/TAG" token files and cats.txt with one "file genre" line each.
def load_brown(split_seed: int = DEFAULT_SPLIT_SEED) -> TextDataset:
    texts, names = [], []
    with zipfile.ZipFile(_path("brown-corpus", "brown.zip")) as archive:
        genres = [line.split() for line in archive.read("brown/cats.txt").decode("utf-8").splitlines() if line.strip()]
        for file_id, genre in sorted(genres):
            tokens = archive.read(f"brown/{file_id}").decode("latin-1").split()
            texts.append(" ".join(token.rsplit("/", 1)[0] for token in tokens))
            names.append(genre)
    return _build("brown", texts, names, _random_split(len(texts), split_seed))


def _newsgroups_split(filename: str) -> _Documents:
    texts, names = [], []
    with tarfile.open(_path("20-newsgroups", filename)) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is not None:
                texts.append(handle.read().decode("latin-1"))
                names.append(member.name.split("/")[1])
    return texts, names


# 20 Newsgroups "bydate": one post per file, the group is the folder name; headers are kept.
def load_20newsgroups(split_seed: int = DEFAULT_SPLIT_SEED) -> TextDataset:
    train_texts, train_names = _newsgroups_split("20news-bydate-train.tar.gz")
    test_texts, test_names = _newsgroups_split("20news-bydate-test.tar.gz")
    num_train, num_test = len(train_texts), len(test_texts)
    splits = _carve_validation(np.arange(num_train), np.arange(num_train, num_train + num_test), split_seed)
    return _build("20newsgroups", train_texts + test_texts, train_names + test_names, splits)


# Consumer Complaints: rows of the CFPB export sample that carry a narrative, labelled by Product.
def load_consumer_complaints(split_seed: int = DEFAULT_SPLIT_SEED) -> TextDataset:
    texts, names = [], []
    with open(_path("consumer-complaints", "cfpb_complaints_sample_6623.csv"), encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            narrative = row["Consumer complaint narrative"].strip()
            if narrative:
                texts.append(narrative)
                names.append(row["Product"])
    return _build("consumer_complaints", texts, names, _random_split(len(texts), split_seed))


# News Aggregator: "TITLE<TAB>CATEGORY" files with a header, already split 80/10/10 by their source.
def load_news_aggregator(split_seed: int = DEFAULT_SPLIT_SEED) -> TextDataset:
    texts: list[str] = []
    names: list[str] = []
    splits: dict[str, np.ndarray] = {}
    for split, filename in zip(SPLITS, ("nlp100_train.tsv", "nlp100_valid.tsv", "nlp100_test.tsv")):
        start = len(texts)
        with open(_path("news-aggregator", filename), encoding="utf-8", newline="") as f:
            reader = csv.reader(io.StringIO(f.read()), delimiter="\t", quoting=csv.QUOTE_NONE)
            next(reader)
            for title, category in reader:
                texts.append(title)
                names.append(category)
        splits[split] = np.arange(start, len(texts))
    return _build("news_aggregator", texts, names, splits)


DATASETS: dict[str, DatasetInfo] = {
    "sms_spam": DatasetInfo("sms-spam-collection", ("SMSSpamCollection",), "SmsSpamCollection",
                            "2 classes (ham, spam); seeded 80/10/10 split.", load_sms_spam),
    "mcdonalds": DatasetInfo("mcdonalds-sentiment", ("McDonalds-Yelp-Sentiment-DFE.csv",), "McDonalds",
                             "9 classes: the first complaint type listed per review, unlabelled reviews dropped; "
                             "seeded 80/10/10 split.", load_mcdonalds),
    "reuters": DatasetInfo("reuters-21578", ("reuters21578_sgm.tar.gz",), "Reuters",
                           "ModApte stories with one of the 90 topics present in both ModApte splits, labelled "
                           "by the first such topic listed; ModApte test split, validation drawn from train.",
                           load_reuters),
    "brown": DatasetInfo("brown-corpus", ("brown.zip",), "Brown", "15 genres; seeded 80/10/10 split.", load_brown),
    "20newsgroups": DatasetInfo("20-newsgroups", ("20news-bydate-train.tar.gz", "20news-bydate-test.tar.gz"),
                                "20Newsgroups",
                                "20 groups; bydate test split, validation drawn from the bydate train split.",
                                load_20newsgroups),
    "consumer_complaints": DatasetInfo("consumer-complaints", ("cfpb_complaints_sample_6623.csv",),
                                       "ConsumerComplaints",
                                       "complaints with a narrative, labelled by Product (13 classes); seeded "
                                       "80/10/10 split.", load_consumer_complaints),
    "news_aggregator": DatasetInfo("news-aggregator", ("nlp100_train.tsv", "nlp100_valid.tsv", "nlp100_test.tsv"),
                                   "NewsAggregator",
                                   "4 categories (b, e, m, t); the source's own train/valid/test split.",
                                   load_news_aggregator),
}


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a known task, else raise with the valid names."""
    if name not in DATASETS:
        close = [n for n in DATASETS if n.replace("_", "") == re.sub(r"[^a-z0-9]", "", name.lower())]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown text classification dataset {name!r}; valid names are {list(DATASETS)}.{hint}")
    return name


@functools.lru_cache(maxsize=4)
def load_dataset(name: str, split_seed: int = DEFAULT_SPLIT_SEED) -> TextDataset:
    """Load one task by its name in ``DATASETS``; the result is cached per process.

    Raises:
        ValueError: for an unknown name.
        seqopt.data.files.MissingDataError: when the data files are neither in the mirror
            (``SEQOPT_DATA_MIRROR``) nor in the cache.
    """
    return DATASETS[check_dataset_name(name)].loader(split_seed)
