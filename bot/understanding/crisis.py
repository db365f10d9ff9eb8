"""The crisis layer: find a resident in danger in any clause of a message, before anything else.

One classifier answering one intent per message missed crises it had not seen
(a fire told in the second sentence after a fraud question, a farewell without
the word death, a collapse answered with the elderly-reentry desk). This layer
looks for a crisis on its own, recall first, and its verdict outranks every
other decision (docs/crisis.md):
- the message is cut into clauses (sentence ends and discourse markers such as
  「あと」「ところで」「ていうか」, from intents/_crisis.yaml);
- in each clause, curated cues (regular expressions over normalised text, with
  `unless` patterns for a fire drill or 「死ぬほど眠い」) and a crisis model of its
  own (a linear SVM over the matcher's n-gram features, classes none / fire_medical
  / danger / suicide, weighted for recall) each find a crisis kind;
- a kind found by a cue beats one found only by the model; among cues the order of
  `kinds` decides (fire and medical first: 119 leads; danger from people: 110).
"""

from __future__ import annotations

import re
import re._constants as _c
import re._parser as _parser
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.svm import LinearSVC

from bot.content.schema import CrisisFile
from bot.core.normalize import Normalizer

NONE = "none"
# The crisis model's regularisation and class weights: "balanced" gives the few crisis
# examples the weight of all the others together, which is what recall first means here.
MODEL_C = 0.5
# A clause shorter than this (normalised characters) is not scored on its own by the
# model: 「もう」 after a question scored as a suicide crisis.
MIN_CLAUSE = 4
CLASS_WEIGHT = "balanced"


@dataclass(frozen=True)
class Verdict:
    kind: str  # fire_medical | danger | suicide
    intent: str  # the crisis intent answered (emergency, suicide_crisis)
    answer: str  # the city's answer for this kind (emergency_119 leads with 119)
    clause: int  # where it was found: 0 the whole message, n the n-th clause
    evidence: str  # the cue's name, or "model"
    score: float  # 100 for a cue; the model's margin (0-100) otherwise
    # Topic intents whose own answer already leads with this kind's number in every city
    # (the DV answer lists 110 first): a message that is clearly that topic gets it.
    covers: frozenset[str] = frozenset()
    plea: bool = False  # found by a cue that names no danger of its own (「助けて」)
    clauses: int = 1  # how many clauses the message has


def _alternation(patterns: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def first_chars(pattern: str) -> frozenset[str] | None:
    """The characters a match of `pattern` can start with, or None when any could (or the
    pattern is beyond this simple reading). A hundred cue patterns cost about 125 µs per
    text; skipping those whose first characters are absent from the text costs almost
    nothing, and Python's re does not do it for patterns that open with an alternation."""
    try:
        items = list(_parser.parse(pattern))
    except re.error:
        return None
    return _first(items)


def _first(items: list) -> frozenset[str] | None:  # noqa: C901 - one case per opcode
    found: set[str] = set()
    for op, arg in items:
        if op == _c.LITERAL:
            return frozenset(found | {chr(arg)})
        if op == _c.IN:
            chars = {chr(a) for o, a in arg if o == _c.LITERAL}
            if any(o not in (_c.LITERAL,) for o, _ in arg):
                return None  # ranges, categories, negation: any character could start it
            return frozenset(found | chars)
        if op in (_c.AT, _c.ASSERT_NOT, _c.ASSERT):
            continue  # zero-width: the match starts at what follows
        if op == _c.SUBPATTERN:
            inner = _first(list(arg[-1]))
            if inner is None:
                return None
            return frozenset(found | inner)  # (an empty group would be a content error anyway)
        if op == _c.BRANCH:
            union: set[str] = set()
            for branch in arg[1]:
                part = _first(list(branch))
                if part is None:
                    return None
                union |= part
            return frozenset(found | union)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            low, _, body = arg
            part = _first(list(body))
            if part is None:
                return None
            found |= part
            if low >= 1:
                return frozenset(found)
            continue  # optional: what follows may start the match too
        return None  # ANY, NOT_LITERAL, GROUPREF ...: give up
    return None  # the pattern may match the empty string


class CrisisLayer:
    """Cues and clause breaks from intents/_crisis.yaml, and the fitted crisis model."""

    def __init__(self, spec: CrisisFile, normalize: Normalizer) -> None:
        self.spec = spec
        self.normalize = normalize
        self.kinds: list[str] = list(spec.kinds)  # precedence order
        self._breaks = re.compile("|".join(f"(?:{p})" for p in spec.clause_breaks), re.IGNORECASE)
        # Each cue pattern with the characters its matches can start with (None: any).
        self._cues = [(cue.name, cue.kind, [(first_chars(p), re.compile(p)) for p in cue.patterns],
                       _alternation(cue.unless)) for cue in spec.cues]
        self._patterns = [fp for _, _, patterns, _ in self._cues for fp in patterns]
        self._anchored = [(f, p) for f, p in self._patterns if "\\A" in p.pattern or "\\Z" in p.pattern]
        self._topic_first = {cue.name for cue in spec.cues if cue.topic_first}
        self.threshold = spec.model_threshold
        self.threshold_after = spec.model_threshold_after_crisis
        self.covers: dict[str, frozenset[str]] = {}
        self.model: LinearSVC | None = None
        self._coef: np.ndarray | None = None
        self._intercept: np.ndarray | None = None
        self._classes: list[str] = []

    # ------------------------------------------------------------ training

    def label(self, intent: str | None, example: str) -> str:
        """The model's class of a training example: its crisis kind, or none. An emergency
        example with a fire, gas or medical cue is fire_medical, so the model learns 119 too."""
        if intent == self.spec.kinds["suicide"].intent:
            return "suicide"
        if intent == self.spec.kinds["danger"].intent:
            found = self.cue_kinds(example)
            return "fire_medical" if "fire_medical" in found else "danger"
        return NONE

    def fit(self, matrix: csr_matrix, labels: Sequence[str]) -> None:
        model = LinearSVC(C=MODEL_C, class_weight=CLASS_WEIGHT, random_state=0).fit(matrix, np.array(labels))
        self.use(model)

    def use(self, model: LinearSVC) -> None:
        self.model = model
        self._classes = [str(c) for c in model.classes_]
        self._coef = np.ascontiguousarray(model.coef_.T, dtype=np.float32)
        self._intercept = model.intercept_.astype(np.float32)

    # ------------------------------------------------------------ per message

    def clauses(self, text: str) -> list[str]:
        parts = [p for p in self._breaks.split(text) if p and p.strip()]
        return parts or [text]

    def _could_match(self, normalised: str, anchored: bool) -> bool:
        """Whether any cue pattern (only the anchored ones, or all) matches, ignoring `unless`."""
        chars = set(normalised)
        return any((first is None or not first.isdisjoint(chars)) and pattern.search(normalised)
                   for first, pattern in (self._anchored if anchored else self._patterns))

    def cue_kinds(self, normalised: str) -> dict[str, str]:
        """Crisis kinds whose cues occur in one normalised clause: kind -> cue name (a named
        danger rather than a plea where both occur)."""
        found: dict[str, str] = {}
        chars = set(normalised)
        for name, kind, patterns, unless in self._cues:
            if not any((first is None or not first.isdisjoint(chars)) and pattern.search(normalised)
                       for first, pattern in patterns):
                continue
            if unless is not None and unless.search(normalised):
                continue
            if kind not in found or found[kind] in self._topic_first:
                found[kind] = name
        return found

    def model_kind(self, columns: np.ndarray, weights: np.ndarray) -> tuple[str, float]:
        """The model's most likely crisis kind for one clause and its score (0-100)."""
        assert self._coef is not None and self._intercept is not None
        if not len(columns):  # no known n-gram: nothing to say
            return NONE, 0.0
        margins = weights @ self._coef[columns] + self._intercept
        best, score = NONE, -1.0
        for cls, margin in zip(self._classes, margins):
            if cls != NONE and 50.0 + 50.0 * float(margin) > score:
                best, score = cls, 50.0 + 50.0 * float(margin)
        return best, max(0.0, min(100.0, score))

    def detect(self, text: str, whole: tuple[str, tuple[str, float]],
               vector: Callable[[str], tuple[np.ndarray, np.ndarray]], after: str | None = None) -> Verdict | None:
        """The crisis in a message, if any. `whole` is the message's normalised text and the
        model's kind and score for it (already computed by the matcher); `vector` computes a
        clause's features.
        `after`: the crisis answer just given; the model listens more closely for that same
        kind (「もうどうでもいい」 after 「死にたい」), never for another."""
        again = next((k for k, spec in self.spec.kinds.items() if spec.answer == after), None)
        clauses = [q for q in map(self.normalize, self.clauses(text)) if q]
        if len(clauses) < 2:
            clauses = []  # one clause: the whole message is it
        # Cues run on each clause, so that a clause's `unless` stays in its clause. Most
        # messages hold no cue: one search over the clauses joined by line breaks says so
        # first ('.' never crosses a line break and a line break is neither letter nor
        # kana, so it finds what a search of each clause finds), except for the few
        # patterns anchored to a text's start or end, which are tried on each clause.
        cue_texts = clauses or [whole[0]]
        if clauses and not self._could_match("\n".join(clauses), anchored=False) and not any(
                self._could_match(q, anchored=True) for q in clauses):
            cue_texts = []
        cued: list[tuple[int, bool, int, str, str]] = []  # (precedence, plea, clause, kind, cue)
        for n, query in enumerate(cue_texts, start=1 if clauses else 0):
            for kind, name in self.cue_kinds(query).items():
                # a named danger outranks a plea of the same kind
                cued.append((self.kinds.index(kind), name in self._topic_first, n, kind, name))
        named = [c for c in cued if not c[1]]
        if named:  # a named danger beats the model
            *_, n, kind, name = min(named)
            return self._verdict(kind, n, name, 100.0, len(clauses) or 1)
        modelled: list[tuple[float, int, str]] = []
        if self._coef is not None:
            for n, query in enumerate([whole[0], *clauses]):
                if n and len(query) < MIN_CLAUSE:
                    continue  # 「もう」 alone says nothing the whole message does not
                kind, score = whole[1] if n == 0 else self.model_kind(*vector(query))
                if kind != NONE and score >= (self.threshold_after if kind == again else self.threshold):
                    modelled.append((score, n, kind))
        if cued:
            # A plea names no kind: where the model hears fire, gas or illness, 119 leads.
            medical = [m for m in modelled if m[2] == "fire_medical"]
            if medical:
                score, n, kind = max(medical)
                return self._verdict(kind, n, cued[0][4] + "+model", 100.0, len(clauses) or 1)
            *_, n, kind, name = min(cued)
            return self._verdict(kind, n, name, 100.0, len(clauses) or 1)
        if modelled:
            score, n, kind = max(modelled)
            return self._verdict(kind, n, "model", round(score, 1), len(clauses) or 1)
        return None

    def _verdict(self, kind: str, clause: int, evidence: str, score: float, clauses: int) -> Verdict:
        spec = self.spec.kinds[kind]  # type: ignore[index]
        return Verdict(kind, spec.intent, spec.answer, clause, evidence, score, self.covers.get(kind, frozenset()),
                       plea=evidence in self._topic_first, clauses=clauses)
