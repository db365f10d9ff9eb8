"""Match a resident's message to an intent: a classifier, fuzzy evidence, keywords, thresholds.

Scoring (`Matcher.score`) and deciding (`decide`) are separate so that the
evaluator can sweep thresholds without scoring again.

Japanese is unsegmented, so word-based scorers do not apply. Per target (each
intent, out-of-scope, each follow-up kind) two kinds of evidence are blended:
- a linear SVM (scikit-learn LinearSVC, one target against the rest) over
  character n-grams of the text and of its kana reading, plus latin words for
  English (bot.understanding.features); its margin, mapped to 0-100, carries most of the signal;
- fuzzy similarity: rapidfuzz `ratio` (whole string: typos, width, dialect
  endings) and `partial_ratio` (best-aligned substring, discounted for short
  strings) to the target's closest example, run with `process.cdist` over the
  examples nearest by n-gram cosine, so the cost stays flat as the catalogue grows;
then keywords lift their intent, and a message that nearly repeats one of an
intent's negative examples loses points.
On the labelled set, with the same examples, this answered 0.919 where the
earlier nearest-examples TF-IDF blend answered 0.873 (benchmarks/matcher_vs_baseline.py
prints the current figure beside a plain nearest-example baseline).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
from rapidfuzz import fuzz, process
from scipy.sparse import csr_matrix, vstack
from sklearn.svm import LinearSVC

from bot.content.loader import Catalog, leading_number
from bot.content.schema import Thresholds
from bot.core.normalize import Cue, Normalizer
from bot.understanding.crisis import NONE, CrisisLayer, Verdict
from bot.understanding.features import Features

log = logging.getLogger(__name__)
OUT_OF_SCOPE = "_out_of_scope"
FOLLOWUP_PREFIX = "_followup_"
# The SVM margin carries the decision; fuzzy similarity adds typo tolerance. Chosen by
# 5-fold cross-validation on the training examples (not on the labelled set).
WEIGHTS = {"svm": 1.0, "fuzzy": 0.1}
# SVM regularisation: lower trusts single n-grams less.
SVM_C = 0.5
# rapidfuzz runs on this many examples, those nearest by n-gram cosine (more costs time
# on long messages; 32 and 16 gave the same accuracy on the labelled and general held-out sets).
FUZZY_SHORTLIST = 16
# The shortlist's similarity ignores n-grams found in more than this share of the examples.
COMMON_SHARE = 0.05
# Substring matches count fully only when the shorter side has this many characters.
PARTIAL_FULL_LENGTH = 6
PARTIAL_WEIGHT = 0.92
# A keyword found in the message adds this much to its intent (twice for two keywords);
# a floor would let one cue override everything else the message says.
KEYWORD_FLOOR = 0.0
KEYWORD_BONUS = 10.0
# A message that nearly repeats one of an intent's negative examples (fuzzy similarity
# at least NEGATIVE_MIN) and is closer to it than to any of its examples loses this much.
NEGATIVE_PENALTY = 25.0
NEGATIVE_MIN = 75.0
NEGATIVE_CANDIDATES = 5

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
    # what the crisis layer found (bot.understanding.crisis): it outranks every other decision
    crisis: Verdict | None = None
    # the crisis model's likeliest kind for the whole message, as (intent, answer), whatever
    # its score: when the classifier alone answers a crisis, the right number still leads
    guess: tuple[str, str] | None = None
    # intents one of whose own keywords or patterns the message contains (「夫に…殴」)
    cued: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Match:
    decision: Decision
    intent: str | None
    score: float
    candidates: tuple[Candidate, ...]  # top candidates, best first (for clarify and the JSON contract)
    # "phone" / "more": the decision when the message asks about the last answer, and a hint
    # (for the dialogue) with any other decision when it reads as one too
    followup: str | None = None
    # A crisis answer: the crisis layer's verdict (its kind picks the answer: 119 or 110 first)
    # and the topic the message also raised, offered as the next step.
    crisis: Verdict | None = None
    also: str | None = None
    answer: str | None = None  # the city answer to give, when not the intent's own (emergency_119)

    @property
    def answer_id(self) -> str | None:
        return self.answer or self.intent

    def is_crisis_answer(self, crisis: frozenset[str]) -> bool:
        """The crisis answer itself, or a topic answered because it leads with the crisis's
        number (DV: 110 first). A topic answered with the crisis lines as the next step is not."""
        return self.decision == "answer" and (self.intent in crisis or (
            self.crisis is not None and self.intent in self.crisis.covers))


# Bump when what is cached changes shape (the code's own sources are hashed too).
MODEL_FORMAT = 2


def _fingerprint(targets: Sequence[str], examples: Sequence[str], owner: np.ndarray,
                 crisis_labels: Sequence[str], crisis_extra: Sequence[tuple[str, str]]) -> str:
    """What the fitted model depends on: the normalised training texts and their targets,
    the feature and matching code, and the libraries that fit and read them."""
    digest = hashlib.sha256()
    versions = [MODEL_FORMAT, SVM_C] + [metadata.version(p) for p in ("scikit-learn", "fugashi", "unidic-lite",
                                                                        "numpy", "scipy")]
    digest.update(json.dumps(versions).encode())
    for source in (inspect.getfile(Features), inspect.getfile(Normalizer), __file__, inspect.getfile(CrisisLayer)):
        digest.update(Path(source).read_bytes())
    digest.update(json.dumps([list(targets), list(examples), list(crisis_labels), list(crisis_extra)],
                             ensure_ascii=False).encode())
    digest.update(owner.tobytes())
    return digest.hexdigest()[:32]


Fitted = tuple[Features, csr_matrix, LinearSVC, LinearSVC]


def _fit(examples: Sequence[str], owner: np.ndarray, crisis_labels: Sequence[str],
         crisis_extra: Sequence[tuple[str, str]], layer: CrisisLayer) -> Fitted:
    features, matrix = Features.fit(examples)
    # The fixed seed keeps every start-up's model identical.
    svm = LinearSVC(C=SVM_C, random_state=0).fit(matrix, owner)
    # The crisis model learns from every example (the crisis intents' by their cues) and
    # from its own examples by kind, including those that only sound like one (「死ぬほど眠い」).
    rows = vstack([matrix, features.matrix([text for _, text in crisis_extra])]) if crisis_extra else matrix
    layer.fit(rows.tocsr(), [*crisis_labels, *(kind for kind, _ in crisis_extra)])
    assert layer.model is not None
    return features, matrix, svm, layer.model


def _fit_cached(cache_dir: Path | None, key: str, examples: Sequence[str], owner: np.ndarray,
                crisis_labels: Sequence[str], crisis_extra: Sequence[tuple[str, str]], layer: CrisisLayer) -> Fitted:
    """Fitting takes about 3 s of CPU at every start (serve, chat, evaluate, each worker
    of a test run); the same content and code give the same model, so it is kept on disk
    under a hash of both. Only this program writes that folder (pickle runs code on load:
    treat the folder like the virtualenv). Any problem with it means a fresh fit."""
    path = cache_dir / f"matcher-{key}.pickle" if cache_dir else None
    if path is not None and path.exists():
        try:
            with path.open("rb") as file:
                return pickle.load(file)
        except Exception:  # noqa: BLE001 - a damaged or foreign file: fit instead
            log.warning("model cache %s unreadable; fitting again", path)
    fitted = _fit(examples, owner, crisis_labels, crisis_extra, layer)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False) as tmp:
                pickle.dump(fitted, tmp, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp.name, path)  # readers never see half a file
            # About 40 MB each: keep the last few content versions only.
            for old in sorted(path.parent.glob("matcher-*.pickle"), key=lambda p: p.stat().st_mtime)[:-3]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            log.info("model cache not written (%s); the next start fits again", exc)
    return fitted


def _leading_with(catalog: Catalog, number: str, crisis: frozenset[str]) -> frozenset[str]:
    """Sensitive topic intents whose answer lists a desk with this number first, in every city."""
    return frozenset(i.id for i in catalog.intents if i.id not in crisis and i.flow == "sensitive"
                     and all(leading_number(city.answers[i.id], city.desks) == number
                             for city in catalog.cities.values()))


class Matcher:
    def __init__(self, catalog: Catalog, cache_dir: Path | None = None) -> None:
        self.thresholds = catalog.thresholds
        self.normalize = Normalizer(catalog.synonyms)
        self.crisis = frozenset(i.id for i in catalog.intents if i.priority == "crisis")
        self.intent_ids = [i.id for i in catalog.intents]

        # Targets: intents, then out-of-scope, then follow-up kinds, each owning examples.
        targets: list[tuple[str, list[str]]] = [(i.id, i.examples) for i in catalog.intents]
        targets.append((OUT_OF_SCOPE, list(catalog.out_of_scope)))
        targets += [(FOLLOWUP_PREFIX + kind, phrases) for kind, phrases in catalog.followups.items()]
        self._targets = [t for t, _ in targets]
        self._examples = [self.normalize(e) for _, examples in targets for e in examples]
        self._owner = np.array([n for n, (_, examples) in enumerate(targets) for _ in examples], dtype=np.int64)
        self._lengths = np.array([len(e) for e in self._examples], dtype=np.float32)
        self.crisis_layer = CrisisLayer(catalog.crisis, self.normalize)
        crisis_labels = [self.crisis_layer.label(self._targets[o], e) for o, e in zip(self._owner, self._examples)]
        # The crisis model's own examples (by kind) and the crisis intents' negative examples.
        crisis_extra = [(kind, self.normalize(e)) for kind, texts in catalog.crisis_training.items() for e in texts]
        crisis_extra += [(NONE, self.normalize(e)) for i in catalog.intents if i.priority == "crisis"
                         for e in i.negative_examples]
        self.fingerprint = _fingerprint(self._targets, self._examples, self._owner, crisis_labels, crisis_extra)
        self._features, matrix, self._svm, crisis_model = _fit_cached(
            cache_dir, self.fingerprint, self._examples, self._owner, crisis_labels, crisis_extra,
            self.crisis_layer)
        self.crisis_layer.use(crisis_model)
        self.crisis_layer.covers = {kind: _leading_with(catalog, spec.number, self.crisis)
                                    for kind, spec in catalog.crisis.kinds.items() if spec.number}
        # Per message only the postings of its own n-grams are touched (see _cosine()).
        self._postings = matrix.tocsc()
        # n-grams in more than 5% of the examples (「して」「です」) rank nothing and carry most postings.
        self._informative = np.diff(self._postings.indptr) <= max(20, COMMON_SHARE * matrix.shape[0])
        self._coef = np.ascontiguousarray(self._svm.coef_.T, dtype=np.float32)  # features x classes
        self._intercept = self._svm.intercept_.astype(np.float32)

        # negative examples per intent, with their lengths
        self._negatives = {
            k: ([self.normalize(e) for e in i.negative_examples],
                np.array([len(self.normalize(e)) for e in i.negative_examples], dtype=np.float32))
            for k, i in enumerate(catalog.intents) if i.negative_examples
        }
        # Keywords by their first character: a message is checked only against the keywords
        # that can start at one of its characters (about 650 substring tests became ~50).
        self._keywords: dict[str, list[tuple[int, Cue]]] = {}
        for k, i in enumerate(catalog.intents):
            for w in map(self.normalize, i.keywords):
                if w:
                    self._keywords.setdefault(w[0], []).append((k, Cue(w)))
        self._patterns = [(k, re.compile(p)) for k, i in enumerate(catalog.intents) for p in i.patterns]
        # Intents that need positive evidence before they may be answered (schema.Guard).
        index = {intent_id: k for k, intent_id in enumerate(self.intent_ids)}
        self._guards = [(k, [re.compile("|".join(group)) for group in i.guard.all_of],
                         re.compile("|".join(i.guard.none_of)) if i.guard.none_of else None,
                         index[i.guard.instead])
                        for k, i in enumerate(catalog.intents) if i.guard]
        # A guarded answer is given only on its evidence, never as a side button.
        self.guarded = frozenset(i.id for i in catalog.intents if i.guard)
        # Never a side button: the guarded, and what helps no one in danger (thanks, the menu).
        self.no_side_button = self.guarded | frozenset(i.id for i in catalog.intents if not i.next_step)

    def _guard(self, query: str, scores: np.ndarray) -> set[str]:
        """An intent whose evidence is missing scores nothing; its `instead` takes its score
        (a message naming DV with no sign that the writer is the one who harms is the
        victim's, whatever the classifier thought)."""
        proven = set()
        for k, all_of, none_of, instead in self._guards:
            # under the floor it can never be answered: no need to read the evidence
            held = scores[k] >= self.thresholds.floor and all(group.search(query) for group in all_of) and not (
                none_of and none_of.search(query))
            if held:
                proven.add(self.intent_ids[k])
            else:
                scores[instead] = max(scores[instead], scores[k])
                scores[k] = 0.0
        return proven

    def _fuzzy(self, query: str, choices: Sequence[str], lengths: np.ndarray) -> np.ndarray:
        ratio = process.cdist([query], choices, scorer=fuzz.ratio, dtype=np.float32)[0]
        partial = process.cdist([query], choices, scorer=fuzz.partial_ratio, dtype=np.float32)[0]
        shorter = np.minimum(lengths, len(query))
        return np.maximum(ratio, partial * PARTIAL_WEIGHT * np.minimum(1.0, shorter / PARTIAL_FULL_LENGTH))

    def _cosine(self, columns: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Similarity of the message to every example: the sum, over the message's n-grams,
        of each example's weight for it (gathered from the column postings at once)."""
        post = self._postings
        keep = self._informative[columns]
        columns, weights = columns[keep], weights[keep]
        starts, ends = post.indptr[columns], post.indptr[columns + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        # positions of all postings, range by range, in one vector
        shift = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        at = shift + np.arange(total)
        return np.bincount(post.indices[at], weights=post.data[at] * np.repeat(weights, lengths),
                           minlength=post.shape[0])

    def score(self, text: str, after: str | None = None) -> Scores:
        """`after`: the crisis answer just given (emergency_119, suicide_crisis ...): the crisis
        model listens more closely for that kind (「もうどうでもいい」 after 「死にたい」)."""
        query = self.normalize(text)
        n, t = len(self.intent_ids), len(self._targets)
        if not query:
            zero = tuple(Candidate(i, 0.0) for i in self.intent_ids)
            return Scores(query, zero, 0.0, {name[len(FOLLOWUP_PREFIX):]: 0.0 for name in self._targets[n + 1:]})

        columns, weights = self._features.vector(query)
        margins = weights @ self._coef[columns] + self._intercept
        if len(margins) == 1:  # two targets only: one margin, for the second
            margins = np.array([-margins[0], margins[0]])
        svm = np.zeros(t, dtype=np.float32)
        svm[self._svm.classes_] = np.clip(50.0 + 50.0 * margins, 0.0, 100.0)

        cosine = self._cosine(columns, weights)
        shortlist = np.argpartition(-cosine, min(FUZZY_SHORTLIST, len(cosine) - 1))[:FUZZY_SHORTLIST]
        fuzzy = np.zeros(t, dtype=np.float32)
        np.maximum.at(fuzzy, self._owner[shortlist],
                      self._fuzzy(query, [self._examples[k] for k in shortlist], self._lengths[shortlist]))

        blend = WEIGHTS["svm"] * svm + WEIGHTS["fuzzy"] * fuzzy
        scores = blend[:n].astype(np.float64)

        hits = np.zeros(n)
        for first in set(query):
            for owner, keyword in self._keywords.get(first, ()):
                if keyword.found_in(query):
                    hits[owner] += 1
        for owner, pattern in self._patterns:
            if pattern.search(query):
                hits[owner] += 1
        hit = hits > 0
        scores[hit] = np.maximum(scores[hit], KEYWORD_FLOOR) + KEYWORD_BONUS * np.minimum(hits[hit], 2)

        # Negatives only matter for intents that could win: the leading few, within a
        # penalty of the top (one further behind stays behind even if the top is penalised).
        best = scores.max()
        for k in np.argsort(-scores)[:NEGATIVE_CANDIDATES]:
            if scores[k] < best - NEGATIVE_PENALTY or scores[k] < self.thresholds.floor:
                break  # (one under the floor is never answered: its negatives change nothing)
            if k in self._negatives:
                negatives, lengths = self._negatives[k]
                near = float(self._fuzzy(query, negatives, lengths).max())
                if near >= NEGATIVE_MIN and near > fuzzy[k]:
                    scores[k] -= NEGATIVE_PENALTY

        proven = self._guard(query, scores)
        scores = np.clip(scores, 0.0, 100.0)
        order = np.argsort(-scores, kind="stable")
        ranked = tuple(Candidate(self.intent_ids[k], round(float(scores[k]), 1)) for k in order)
        # Follow-ups ("電話番号は？") are targets of their own, on the same scale as intents.
        followups = {name[len(FOLLOWUP_PREFIX):]: round(float(blend[k]), 1)
                     for k, name in enumerate(self._targets) if k > n}
        # the model's kind for the whole message, computed once: the crisis layer's first
        # evidence, and the answer's kind when the classifier alone answers a crisis
        kind, kind_score = self.crisis_layer.model_kind(columns, weights)
        verdict = self.crisis_layer.detect(text, (query, (kind, kind_score)), self.vector, after)
        if verdict and verdict.evidence == "model" and verdict.kind == "danger" and ranked[0].intent in proven:
            # The model's guess of danger from people yields to the writer's own act, proven
            # by a guard (「妻を殴ってしまう」). Never a 119 or suicide guess: those stay.
            verdict = None
        spec = self.crisis_layer.spec.kinds.get(kind) if kind != NONE else None  # type: ignore[call-overload]
        guess = (spec.intent, spec.answer) if spec else None
        cued = frozenset(self.intent_ids[k] for k in np.flatnonzero(hit))
        return Scores(query, ranked, round(float(blend[n]), 1), followups, verdict, guess, cued)

    def vector(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature columns and weights of one normalised text."""
        return self._features.vector(query)

    def match(self, text: str, after: str | None = None) -> Match:
        return self.decide(self.score(text, after))

    def decide(self, scores: Scores, thresholds: Thresholds | None = None) -> Match:
        """`decide` with this catalogue's intent roles (the evaluator sweeps `thresholds`)."""
        return decide(scores, thresholds or self.thresholds, self.crisis, self.no_side_button)


def decide(scores: Scores, th: Thresholds, crisis: frozenset[str],
           no_side_button: frozenset[str] = frozenset()) -> Match:
    """Turn scores into answer / clarify / fallback / followup with explicit thresholds."""
    ranked = scores.intents
    top = ranked[0] if ranked else Candidate("", 0.0)
    head = ranked[:3]
    # Out-of-scope must beat the top intent by more than the margin: when a message is
    # as much a theft report as small talk, the resident gets the theft answer.
    out_of_scope_wins = scores.out_of_scope >= th.floor and scores.out_of_scope > top.score + th.margin

    # Whether the message also reads as 「ほかには？」「番号は？」: the dialogue, which knows
    # the last answer, may take it as a follow-up (「つながらない」 after the suicide answer).
    kind, followup = max(scores.followups.items(), key=lambda kv: kv[1], default=(None, 0.0))
    hint = kind if followup >= th.confident else None

    # The crisis layer first: what it found outranks everything; a topic the message also
    # raised (a theft told before 「生きてるのがしんどい」) is offered as the next step.
    verdict = scores.crisis
    if verdict is not None:
        # never a guarded answer (dv_perpetrator: it needs its own evidence) or thanks and the
        # menu (「今までありがとう…さようなら」 once offered 「お礼・おわり」) as a side button
        topic = next((c for c in ranked if c.intent not in crisis and c.intent not in no_side_button), None)
        clear = topic.intent if topic and topic.score >= th.confident else None
        # A topic whose own answer leads with the right number (DV: 110 first, with the notice
        # and quick exit) answers a plea; any other evidence only when the message names the
        # topic in its own words (「旦那に髪の毛つかまれて」) or the classifier, too, hears the
        # topic more than the crisis (「夫に殴られています」 is the DV answer).
        agrees = topic is not None and (verdict.plea or topic.intent in scores.cued or topic.score > next(
            c.score for c in ranked if c.intent == verdict.intent))
        if clear in verdict.covers and agrees:
            return Match("answer", clear, topic.score if topic else 0.0, head, followup=hint, crisis=verdict)
        # the next step only where the message has several clauses: one clause is one matter
        # (「いま後をつけられてる」 needs no stalking button under the 110 card)
        also = clear if verdict.clauses > 1 else None
        return Match("answer", verdict.intent, max(top.score, verdict.score), head, followup=hint,
                     crisis=verdict, also=also, answer=verdict.answer)
    # The classifier alone answers a crisis only when it is very sure; everything else
    # about crises is the crisis layer's (its cues carry their `unless` exceptions).
    best_crisis = max((c for c in ranked if c.intent in crisis), key=lambda c: c.score, default=None)
    if best_crisis is not None and best_crisis.score >= th.crisis_strong:
        answer = scores.guess[1] if scores.guess and scores.guess[0] == best_crisis.intent else None
        return Match("answer", best_crisis.intent, best_crisis.score, head, followup=hint, answer=answer)

    shortlist = tuple(c for c in head if c.score >= th.floor)
    # A message that names a topic in its own words (「DV hotline number?」) is about that
    # topic, not a follow-up to whatever was answered last.
    named = top.intent in scores.cued and top.score >= th.confident
    if kind and followup >= th.confident and followup > top.score and followup >= scores.out_of_scope and not named:
        return Match("followup", None, followup, shortlist, followup=kind)
    if out_of_scope_wins:
        return Match("fallback", None, top.score, shortlist, followup=hint)
    if top.score >= th.confident:
        runner_up = ranked[1].score if len(ranked) > 1 else 0.0
        if top.score - runner_up > th.margin:
            return Match("answer", top.intent, top.score, head, followup=hint)
        return Match("clarify", None, top.score, tuple(c for c in head if top.score - c.score <= th.margin),
                     followup=hint)
    if top.score >= th.floor:
        return Match("clarify", None, top.score, shortlist, followup=hint)
    return Match("fallback", None, top.score, shortlist, followup=hint)
