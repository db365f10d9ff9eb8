"""Character n-gram evidence for unsegmented Japanese: a TF-IDF index and naive Bayes.

Residents rarely type an example; they type its pieces (「殴ら」「還付」「つけられ」)
in new sentences. Both models see text as overlapping character n-grams, so no
word segmenter is needed. Plain numpy, built once at start-up.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np


def grams(text: str, sizes: Sequence[int]) -> Counter[str]:
    return Counter(text[k:k + n] for n in sizes for k in range(len(text) - n + 1))


class TfidfIndex:
    """Cosine similarity of a query to every document (sublinear tf, smoothed idf, L2 norm).

    Stored as an inverted index: for each n-gram, the documents that hold it and
    their weights, so a query touches only the postings of its own n-grams."""

    def __init__(self, docs: Sequence[str], sizes: Sequence[int] = (1, 2, 3)) -> None:
        self.sizes = tuple(sizes)
        self.size = len(docs)
        counts = [grams(d, self.sizes) for d in docs]
        df: Counter[str] = Counter()
        for c in counts:
            df.update(c.keys())
        self.idf = {g: math.log((1 + len(docs)) / (1 + n)) + 1.0 for g, n in df.items()}
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for doc, c in enumerate(counts):
            weights = {g: (1.0 + math.log(n)) * self.idf[g] for g, n in c.items()}
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for g, w in weights.items():
                ids, ws = postings.setdefault(g, ([], []))
                ids.append(doc)
                ws.append(w / norm)
        self.postings = {g: (np.array(ids, dtype=np.int32), np.array(ws, dtype=np.float32))
                         for g, (ids, ws) in postings.items()}

    def similarities(self, query: str) -> np.ndarray:
        scores = np.zeros(self.size, dtype=np.float32)
        weights = {g: (1.0 + math.log(n)) * self.idf[g] for g, n in grams(query, self.sizes).items() if g in self.idf}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        if not norm:
            return scores
        for g, w in weights.items():
            ids, ws = self.postings[g]
            scores[ids] += ws * (w / norm)  # a document appears once per posting list
        return scores


class NaiveBayes:
    """Bernoulli naive Bayes over n-grams: each class against the rest, as a posterior.

    The temperature flattens the posterior, which is overconfident on its own."""

    def __init__(self, classes: Sequence[Sequence[str]], sizes: Sequence[int] = (2, 3),
                 smoothing: float = 0.5, temperature: float = 3.0) -> None:
        self.sizes = tuple(sizes)
        self.temperature = temperature
        vocab: dict[str, int] = {}
        rows: list[np.ndarray] = []
        for c, docs in enumerate(classes):
            for doc in docs:
                for gram in grams(doc, self.sizes):
                    if gram not in vocab:
                        vocab[gram] = len(rows)
                        rows.append(np.zeros(len(classes)))
                    rows[vocab[gram]][c] += 1
        counts = np.array(rows) if rows else np.zeros((0, len(classes)))
        docs_in = np.array([len(d) for d in classes], dtype=np.float64)
        docs_out = docs_in.sum() - docs_in
        a = smoothing
        p_in = (counts + a) / (docs_in + 2 * a)
        p_out = (counts.sum(axis=1, keepdims=True) - counts + a) / (docs_out + 2 * a)
        self.vocab = vocab
        self.weights = (np.log(p_in) - np.log(p_out)).astype(np.float32)

    def posterior(self, query: str) -> np.ndarray:
        rows = [self.vocab[g] for g in grams(query, self.sizes) if g in self.vocab]
        if not rows:
            return np.zeros(self.weights.shape[1])
        logits = self.weights[rows].sum(axis=0, dtype=np.float64) / self.temperature
        odds = np.exp(logits - logits.max())
        return odds / odds.sum()
