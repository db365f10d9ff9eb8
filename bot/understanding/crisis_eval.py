"""Measure the crisis layer: recall first, and what it costs in false crisis answers.

Two measurements, reported side by side by `python -m bot evaluate`:
- a held-out crisis set (tests/data/crisis_heldout.yaml, written by helpers who never
  saw our examples or cues): recall, whether the right number leads (119 for fire,
  gas and medical, 110 for danger from people), and false crisis answers on its
  non-crisis near-misses. It is cut in two halves: the "dev" half is the one whose
  misses a developer may read; the "test" half is reported as figures only. A second
  set written the same way (tests/data/crisis_dev2.yaml) is all dev;
- k-fold cross-validation on our own crisis examples and out-of-scope examples: the
  matcher is fitted without a fold and scores it, so the figure is not one the
  examples were tuned to repeat.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from bot.content.loader import Catalog, City, leading_number
from bot.understanding.matcher import Match, Matcher

KINDS = ("fire119", "gas119", "medical119", "crime_now110", "suicide", "second_sentence", "indirect", "non_crisis")


@dataclass(frozen=True)
class CrisisItem:
    text: str
    crisis: bool
    expect: tuple[str, ...]
    number: str | None
    kind: str


def load_crisis_items(path: Path) -> list[CrisisItem]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of items")
    items = []
    for n, raw in enumerate(data):
        if not isinstance(raw, dict) or not {"text", "crisis", "expect", "number", "kind"} <= set(raw):
            raise ValueError(f"{path}: item {n}: needs text, crisis, expect, number, kind")
        if raw["kind"] not in KINDS or raw["number"] not in (None, "110", "119"):
            raise ValueError(f"{path}: item {n}: unknown kind {raw['kind']!r} or number {raw['number']!r}")
        items.append(CrisisItem(str(raw["text"]), bool(raw["crisis"]), tuple(raw["expect"] or ()),
                                raw["number"], raw["kind"]))
    return items


def first_number(match: Match, city: City) -> str | None:
    """The number the resident sees first: the first phone of the answer's first desk."""
    answer = city.answers.get(match.answer_id or "")
    return leading_number(answer, city.desks) if answer else None


def is_crisis_answer(match: Match, matcher: Matcher) -> bool:
    """A crisis answer: a crisis intent, or a topic answered because it leads with the number."""
    return match.is_crisis_answer(matcher.crisis)


def crisis_report(matcher: Matcher, city: City, items: Sequence[CrisisItem],
                  dev_items: Sequence[CrisisItem] = ()) -> dict[str, Any]:
    """`dev_items`: a second set written the same way, all of it for developers to read
    (tests/data/crisis_dev2.yaml); it joins the dev half and never the test half."""
    halves: dict[str, dict[str, Any]] = {}
    dev = [*items[0::2], *dev_items]
    for name, part in (("dev", dev), ("test", items[1::2]), ("all", [*items, *dev_items])):
        crisis = [i for i in part if i.crisis]
        calm = [i for i in part if not i.crisis]
        found = [(i, matcher.match(i.text)) for i in crisis]
        hits = [(i, m) for i, m in found if is_crisis_answer(m, matcher)]
        numbered = [(i, m) for i, m in hits if i.number]
        false = [i for i in calm if is_crisis_answer(matcher.match(i.text), matcher)]
        per_kind = Counter(i.kind for i in crisis)
        missed_kind = Counter(i.kind for i, m in found if not is_crisis_answer(m, matcher))
        halves[name] = {
            "crisis_items": len(crisis),
            "recall": _rate(len(hits), len(crisis)),
            "right_number_first": _rate(sum(first_number(m, city) == i.number for i, m in numbered), len(numbered)),
            "non_crisis_items": len(calm),
            "false_crisis": _rate(len(false), len(calm)),
            "recall_by_kind": {k: _rate(per_kind[k] - missed_kind[k], per_kind[k]) for k in sorted(per_kind)},
            # Only the dev half's misses are listed: the test half stays unread.
            "misses": [i.text for i, m in found if not is_crisis_answer(m, matcher)] if name == "dev" else [],
        }
    return halves


def false_crisis_rate(matcher: Matcher, texts: Sequence[str]) -> float | None:
    return _rate(sum(is_crisis_answer(matcher.match(t), matcher) for t in texts), len(texts))


def cross_validate(catalog: Catalog, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """k-fold on the crisis examples (the crisis intents' and the crisis model's own) and
    the out-of-scope ones (with the crisis model's `none`): fit without a fold, then
    count crisis answers on its crisis examples (recall) and on the rest (false crisis)."""
    crisis_ids = [i.id for i in catalog.intents if i.priority == "crisis"]
    rng = random.Random(seed)
    crisis_examples = [(i.id, e) for i in catalog.intents if i.id in crisis_ids for e in i.examples]
    crisis_examples += [(kind, e) for kind, texts in catalog.crisis_training.items() if kind != "none" for e in texts]
    oos = list(catalog.out_of_scope) + list(catalog.crisis_training.get("none", ()))
    rng.shuffle(crisis_examples)
    rng.shuffle(oos)
    hits = total = false = calm = 0
    by_evidence: Counter[str] = Counter()
    # Per held-out text: found without the model, and the model's peak score, so that
    # the model threshold can be swept without fitting again.
    peaks: list[tuple[bool, float, bool]] = []  # (found without model, model peak, is crisis)
    for f in range(folds):
        held = {e for n, (_, e) in enumerate(crisis_examples) if n % folds == f}
        held_oos = [e for n, e in enumerate(oos) if n % folds == f]
        intents = tuple(i.model_copy(update={"examples": [e for e in i.examples if e not in held]})
                        if i.id in crisis_ids else i for i in catalog.intents)
        training = {kind: tuple(e for e in texts if e not in held and e not in set(held_oos))
                    for kind, texts in catalog.crisis_training.items()}
        trimmed = replace(catalog, intents=intents, crisis_training=training,
                          out_of_scope=tuple(e for e in catalog.out_of_scope if e not in set(held_oos)))
        matcher = Matcher(trimmed)
        for text in held:
            match = matcher.match(text)
            total += 1
            if is_crisis_answer(match, matcher):
                hits += 1
                by_evidence["cue" if match.crisis and match.crisis.evidence != "model" else
                            "model" if match.crisis else "classifier"] += 1
            peaks.append((*_without_model(matcher, text), True))
        for text in held_oos:
            calm += 1
            false += is_crisis_answer(matcher.match(text), matcher)
            peaks.append((*_without_model(matcher, text), False))
    sweep = []
    for threshold in (10, 20, 25, 30, 40, 50, 60, 70):
        found = [(plain or peak >= threshold, crisis) for plain, peak, crisis in peaks]
        sweep.append({"model_threshold": threshold,
                      "recall": _rate(sum(f for f, c in found if c), total),
                      "false_crisis": _rate(sum(f for f, c in found if not c), calm)})
    return {"folds": folds, "crisis_examples": total, "recall": _rate(hits, total),
            "found_by": dict(by_evidence), "out_of_scope_examples": calm, "false_crisis": _rate(false, calm),
            "model_threshold_sweep": sweep}


def _without_model(matcher: Matcher, text: str) -> tuple[bool, float]:
    """Whether a crisis answer comes without the crisis model, and the model's peak score."""
    layer = matcher.crisis_layer
    threshold, layer.threshold = layer.threshold, 101.0
    try:
        plain = is_crisis_answer(matcher.match(text), matcher)
    finally:
        layer.threshold = threshold
    queries = [q for q in [matcher.normalize(text), *map(matcher.normalize, layer.clauses(text))] if q]
    peaks = [layer.model_kind(*matcher.vector(q))[1] for q in queries]
    return plain, max((p for p in peaks), default=0.0)


def format_crisis(report: dict[str, Any], cv: dict[str, Any] | None) -> str:
    pct = lambda v: "n/a" if v is None else f"{v * 100:.1f}%"  # noqa: E731
    lines = ["", "crisis layer"]
    for name in ("dev", "test", "all"):
        r = report[name]
        lines.append(f"  held-out {name:<4}: recall {pct(r['recall'])} of {r['crisis_items']}, right number first "
                     f"{pct(r['right_number_first'])}, false crisis {pct(r['false_crisis'])} of {r['non_crisis_items']}")
    lines.append("  recall by kind (all): " + ", ".join(f"{k} {pct(v)}" for k, v in report["all"]["recall_by_kind"].items()))
    if cv:
        lines.append(f"  {cv['folds']}-fold cross-validation: recall {pct(cv['recall'])} of {cv['crisis_examples']} "
                     f"crisis examples (found by {cv['found_by']}), false crisis {pct(cv['false_crisis'])} of "
                     f"{cv['out_of_scope_examples']} out-of-scope examples")
        lines.append("    (the cues were written with these examples in view, so this is an upper bound; "
                     "the held-out set above is the figure to trust)")
        lines += [f"    model_threshold {row['model_threshold']:>3}: recall {pct(row['recall'])}, "
                  f"false crisis {pct(row['false_crisis'])}" for row in cv["model_threshold_sweep"]]
    if report["dev"]["misses"]:
        lines.append(f"  dev-half misses ({len(report['dev']['misses'])}):")
        lines += [f"    {t!r}" for t in report["dev"]["misses"]]
    return "\n".join(lines)


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None
