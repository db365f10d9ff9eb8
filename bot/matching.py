"""Match a resident's message to an intent: fuzzy scores, n-gram and keyword evidence, thresholds.

Scoring (`Matcher.score`) and deciding (`decide`) are separate so that the
evaluator can sweep thresholds without scoring again.

Japanese is unsegmented, so token-based scorers do not apply. Three kinds of
evidence, each 0-100, are blended per intent:
- fuzzy: every example scored with two character-level rapidfuzz scorers over
  the whole example array at once (`process.cdist`): `ratio` (whole-string
  similarity: typos, width, dialect endings) and `partial_ratio` (best-aligned
  substring, for a long message that contains an example), the latter
  discounted for short strings, where a substring hit says little;
- n-grams: a naive-Bayes posterior over character 2-3-grams of all examples
  (intents and out-of-scope). Residents rarely type an example; they type its
  pieces (「殴ら」「還付」「つけられ」) in new sentences, and this generalises;
- keywords: a strong cue in the message lifts its intent to a floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rapidfuzz import fuzz, process

from bot.loader import Catalog
from bot.normalize import Normalizer, contains
from bot.schema import Thresholds

OUT_OF_SCOPE = "_out_of_scope"
FOLLOWUP_PREFIX = "_followup_"
# Share of the fuzzy score in the blend; the rest is the n-gram posterior.
FUZZY_WEIGHT = 0.5
NGRAM_SIZES = (2, 3)
NGRAM_SMOOTHING = 0.5
# Flattens the naive-Bayes posterior, which is overconfident on its own.
NGRAM_TEMPERATURE = 3.0
# A keyword found in the message lifts its intent to at least this score.
KEYWORD_FLOOR = 80.0
KEYWORD_BONUS = 8.0
# A message closer to an intent's negative example than to its examples loses this much.
NEGATIVE_PENALTY = 25.0
# Substring matches count fully only when the shorter side has this many characters.
PARTIAL_FULL_LENGTH = 6
PARTIAL_WEIGHT = 0.92

Decision = Literal["answer", "clarify", "fallback", "followup"]


@dataclass(frozen=True)
class Candidate:
    intent: str
    score: float


@dataclass(frozen=True)
class Scores:
    """Raw evidence for one message; `decide` turns it into a decision."""

    normalized: str
    intents: tuple[Candidate, ...]  # every intent, best first
    out_of_scope: float
    followups: dict[str, float]


@dataclass(frozen=True)
class Match:
    decision: Decision
    intent: str | None
    score: float
    candidates: tuple[Candidate, ...]  # top candidates, best first (for clarify and the JSON contract)
    followup: str | None = None  # "phone" / "more" when the message asks about the last answer


class Matcher:
    def __init__(self, catalog: Catalog) -> None:
        self.thresholds = catalog.thresholds
        self.normalize = Normalizer(catalog.synonyms)
        self.crisis = frozenset(i.id for i in catalog.intents if i.priority == "crisis")
        self.intent_ids = [i.id for i in catalog.intents]

        # Targets: intents, then out-of-scope, then follow-up kinds. Examples of one
        # target are contiguous so per-target maxima are one np.maximum.reduceat.
        targets: list[tuple[str, list[str]]] = [(i.id, i.examples) for i in catalog.intents]
        targets.append((OUT_OF_SCOPE, list(catalog.out_of_scope)))
        targets += [(FOLLOWUP_PREFIX + kind, phrases) for kind, phrases in catalog.followups.items()]
        self._targets = [t for t, _ in targets]
        self._examples, self._starts = self._flatten([examples for _, examples in targets])

        negatives = [(n, i.negative_examples) for n, i in enumerate(catalog.intents) if i.negative_examples]
        self._neg_owner = np.array([n for n, _ in negatives], dtype=np.int64)
        self._negatives, self._neg_starts = self._flatten([neg for _, neg in negatives])

        self._keywords = [(n, self.normalize(k)) for n, i in enumerate(catalog.intents) for k in i.keywords]
        self._keywords = [(n, k) for n, k in self._keywords if k]
        # n-gram classes: the intents, then out-of-scope (the last column).
        self._vocab, self._weights = self._ngram_model(
            [[self.normalize(e) for e in i.examples] for i in catalog.intents]
            + [[self.normalize(e) for e in catalog.out_of_scope]]
        )

    @staticmethod
    def _grams(text: str) -> set[str]:
        return {text[k:k + n] for n in NGRAM_SIZES for k in range(len(text) - n + 1)}

    def _ngram_model(self, classes: list[list[str]]) -> tuple[dict[str, int], np.ndarray]:
        """Per n-gram log-odds of each class against the rest (Bernoulli naive Bayes)."""
        vocab: dict[str, int] = {}
        rows: list[np.ndarray] = []
        for c, docs in enumerate(classes):
            for doc in docs:
                for gram in self._grams(doc):
                    if gram not in vocab:
                        vocab[gram] = len(rows)
                        rows.append(np.zeros(len(classes)))
                    rows[vocab[gram]][c] += 1
        counts = np.array(rows) if rows else np.zeros((0, len(classes)))
        docs_in = np.array([len(d) for d in classes], dtype=np.float64)
        docs_out = docs_in.sum() - docs_in
        a = NGRAM_SMOOTHING
        p_in = (counts + a) / (docs_in + 2 * a)
        p_out = (counts.sum(axis=1, keepdims=True) - counts + a) / (docs_out + 2 * a)
        return vocab, (np.log(p_in) - np.log(p_out)).astype(np.float32)

    def _ngram_posterior(self, query: str) -> np.ndarray:
        rows = [self._vocab[g] for g in self._grams(query) if g in self._vocab]
        if not rows:
            return np.zeros(self._weights.shape[1])
        logits = self._weights[rows].sum(axis=0, dtype=np.float64) / NGRAM_TEMPERATURE
        odds = np.exp(logits - logits.max())
        return odds / odds.sum()

    def _flatten(self, groups: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
        flat: list[str] = []
        starts: list[int] = []
        for group in groups:
            starts.append(len(flat))
            flat.extend(self.normalize(e) for e in group)
        return flat, np.array(starts, dtype=np.int64)

    def _similarity(self, query: str, choices: list[str], starts: np.ndarray) -> np.ndarray:
        """Best score per group of choices."""
        if not choices:
            return np.zeros(0)
        ratio = process.cdist([query], choices, scorer=fuzz.ratio, dtype=np.float32)[0]
        partial = process.cdist([query], choices, scorer=fuzz.partial_ratio, dtype=np.float32)[0]
        lengths = np.fromiter((len(c) for c in choices), dtype=np.float32, count=len(choices))
        shorter = np.minimum(lengths, len(query))
        weight = PARTIAL_WEIGHT * np.minimum(1.0, shorter / PARTIAL_FULL_LENGTH)
        combined = np.maximum(ratio, partial * weight)
        return np.maximum.reduceat(combined, starts)

    def score(self, text: str) -> Scores:
        query = self.normalize(text)
        n = len(self.intent_ids)
        if not query:
            zero = tuple(Candidate(i, 0.0) for i in self.intent_ids)
            return Scores(query, zero, 0.0, {t[len(FOLLOWUP_PREFIX):]: 0.0 for t in self._targets[n + 1:]})
        best = self._similarity(query, self._examples, self._starts)
        posterior = 100.0 * self._ngram_posterior(query)
        intent_scores = FUZZY_WEIGHT * best[:n].astype(np.float64) + (1 - FUZZY_WEIGHT) * posterior[:n]
        out_of_scope = FUZZY_WEIGHT * float(best[n]) + (1 - FUZZY_WEIGHT) * float(posterior[n])

        hits = np.zeros(n)
        for owner, keyword in self._keywords:
            if contains(query, keyword):
                hits[owner] += 1
        hit = hits > 0
        intent_scores[hit] = np.maximum(intent_scores[hit], KEYWORD_FLOOR) + KEYWORD_BONUS * np.minimum(hits[hit], 2)

        if len(self._negatives):
            neg = self._similarity(query, self._negatives, self._neg_starts)
            closer = neg > intent_scores[self._neg_owner]
            intent_scores[self._neg_owner[closer]] -= NEGATIVE_PENALTY

        intent_scores = np.clip(intent_scores, 0.0, 100.0)
        order = np.argsort(-intent_scores, kind="stable")
        ranked = tuple(Candidate(self.intent_ids[k], round(float(intent_scores[k]), 1)) for k in order)
        followups = {t[len(FOLLOWUP_PREFIX):]: round(float(s), 1) for t, s in zip(self._targets[n + 1:], best[n + 1:])}
        return Scores(query, ranked, round(out_of_scope, 1), followups)

    def match(self, text: str) -> Match:
        return decide(self.score(text), self.thresholds, self.crisis)


def decide(scores: Scores, th: Thresholds, crisis: frozenset[str]) -> Match:
    """Turn scores into answer / clarify / fallback with explicit thresholds."""
    ranked = scores.intents
    top = ranked[0] if ranked else Candidate("", 0.0)
    shortlist = tuple(c for c in ranked[:3] if c.score >= th.floor)

    # Crisis first: a crisis cue is never lost to fallback or disambiguation.
    for cand in ranked:
        if cand.intent in crisis and cand.score >= th.crisis:
            return Match("answer", cand.intent, cand.score, ranked[:3])

    followup = max(scores.followups.items(), key=lambda kv: kv[1], default=(None, 0.0))
    if followup[0] and followup[1] >= th.confident and followup[1] >= top.score:
        return Match("followup", None, followup[1], shortlist, followup=followup[0])

    if scores.out_of_scope >= th.floor and scores.out_of_scope >= top.score:
        return Match("fallback", None, top.score, shortlist)
    if top.score >= th.confident:
        runner_up = ranked[1].score if len(ranked) > 1 else 0.0
        if top.score - runner_up > th.margin:
            return Match("answer", top.intent, top.score, ranked[:3])
        close = tuple(c for c in ranked[:3] if top.score - c.score <= th.margin)
        return Match("clarify", None, top.score, close)
    if top.score >= th.floor:
        return Match("clarify", None, top.score, shortlist)
    return Match("fallback", None, top.score, shortlist)
