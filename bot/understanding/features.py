"""Character n-gram features for unsegmented Japanese, built with scikit-learn.

Residents rarely type an example; they type its pieces (「殴ら」「還付」「つけられ」)
in new sentences, so text is seen as overlapping character n-grams rather than
words. Three views of the same normalised message, each TF-IDF weighted
(sublinear tf, smoothed idf, L2 norm):
- surface: character 1-3-grams of the text as typed;
- reading: character 2-3-grams of its kana reading (MeCab through fugashi), so that
  「しゅっしょご」 or 「ｼｭｯｼｮｺﾞ」 meet the examples written 「出所後」;
- words: latin word 1-2-grams, for English.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence

import fugashi
import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from bot.core.normalize import fold

_KANJI = re.compile(r"[\u3400-\u9fff々]")
_LATIN = re.compile(r"[a-z0-9']+")
_WHITE = re.compile(r"\s\s+")  # as scikit-learn's character analyzer folds white space
_local = threading.local()


def _tagger() -> fugashi.Tagger:
    # MeCab taggers are not thread-safe (gunicorn runs threads): one per thread; the
    # dictionary is memory-mapped, so each costs about a millisecond once.
    tagger = getattr(_local, "tagger", None)
    if tagger is None:
        tagger = _local.tagger = fugashi.Tagger()  # UniDic (unidic-lite): about 0.07 ms per message
    return tagger


def reading(text: str) -> str:
    """Kana reading of a normalised text, folded to hiragana; text without kanji is returned as is."""
    if not _KANJI.search(text):
        return text
    # Words MeCab has no reading for (latin, digits, unknown) keep their surface, spaced.
    return fold("".join(word.feature.kana or f" {word.surface} " for word in _tagger()(text)))


def _identity(text: str) -> str:
    # Texts arrive normalised (bot.core.normalize); the default lower-casing preprocessor adds nothing.
    return text


def _views(texts: Sequence[str]) -> FeatureUnion:
    """The union of the three views, unfitted."""
    views = [
        ("surface", TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True,
                                    preprocessor=_identity, dtype=np.float32)),
        ("reading", TfidfVectorizer(analyzer="char", ngram_range=(2, 3), sublinear_tf=True,
                                    preprocessor=reading, dtype=np.float32)),
    ]
    # A catalogue with no latin text at all would leave this view with no vocabulary.
    if any(_LATIN.search(t) for t in texts):
        views.append(("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                               token_pattern=_LATIN.pattern, preprocessor=_identity,
                                               dtype=np.float32)))
    return FeatureUnion(views)


class _CharGrams:
    """A character view's analyzer: the same n-grams as scikit-learn's (white space runs
    folded, then every n-gram of each length), without its per-call overhead, which
    counted for most of a message's matching time (this runs for every clause).
    A class, not a closure, so that the fitted features can be kept on disk (pickle)."""

    def __init__(self, prepare: Callable[[str], str], low: int, high: int) -> None:
        self.prepare, self.low, self.high = prepare, low, high

    def __call__(self, text: str) -> list[str]:
        text = _WHITE.sub(" ", self.prepare(text))
        size = len(text)
        return [text[i:i + n] for n in range(self.low, min(self.high, size) + 1) for i in range(size - n + 1)]


class Features:
    """The three views fitted with scikit-learn, and a fast path for one message.

    scikit-learn's `transform` costs about 5 ms per call in validation and
    bookkeeping, the whole matching budget; `vector` computes the same weights
    (tests/understanding/test_matching.py checks they agree) from the fitted vocabularies and
    idf in a few microseconds."""

    def __init__(self, union: FeatureUnion) -> None:
        self.union = union
        self._views = []
        offset = 0
        for _, vectorizer in union.transformer_list:
            self._views.append((self._grams(vectorizer), vectorizer.vocabulary_,
                                vectorizer.idf_.astype(np.float32), offset))
            offset += len(vectorizer.vocabulary_)
        self.size = offset

    @staticmethod
    def _grams(vectorizer: TfidfVectorizer) -> Callable[[str], list[str]]:
        if vectorizer.analyzer != "char":
            return vectorizer.build_analyzer()
        return _CharGrams(vectorizer.build_preprocessor(), *vectorizer.ngram_range)

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[Features, csr_matrix]:
        """Fitted features and the training texts' own rows, from one pass (readings once).
        The rows are returned, not kept: the matcher keeps the form it needs."""
        union = _views(texts)
        matrix = union.fit_transform(texts).tocsr()
        return cls(union), matrix

    def matrix(self, texts: Sequence[str]) -> csr_matrix:
        return self.union.transform(texts).tocsr()

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and weights of one normalised text: sublinear tf x idf, L2 per view."""
        columns: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for analyze, vocabulary, idf, offset in self._views:
            get = vocabulary.get
            counts = Counter(k for k in map(get, analyze(text)) if k is not None)
            if not counts:
                continue
            index = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            weight = (1.0 + np.log(tf)) * idf[index]
            columns.append(index + offset)
            weights.append(weight / np.linalg.norm(weight))
        if not columns:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(columns), np.concatenate(weights)
