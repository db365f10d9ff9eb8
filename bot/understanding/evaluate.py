"""Measure understanding on a labelled YAML file.

Format: a list of `- text: ...` / `expect: [intent ids]` (`expect: null` for
out-of-scope messages, which should get the fallback). A message is correct when
the matcher *answers* with one of its acceptable intents (a 「もしかして」 is not
an answer), or, for out-of-scope messages, falls back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.content.schema import Thresholds
from bot.understanding.matcher import Matcher, Scores

FALLBACK, CLARIFY = "(fallback)", "(clarify)"


@dataclass(frozen=True)
class Item:
    text: str
    expect: tuple[str, ...] | None


def load_items(path: Path, known_intents: set[str] | None = None) -> list[Item]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of {{text, expect}} items")
    items: list[Item] = []
    for n, raw in enumerate(data):
        if not isinstance(raw, dict) or set(raw) != {"text", "expect"} or not isinstance(raw["text"], str):
            raise ValueError(f"{path}: item {n}: needs exactly 'text' (string) and 'expect' (list or null)")
        expect = raw["expect"]
        if expect is not None:
            if isinstance(expect, str):
                expect = [expect]
            if not isinstance(expect, list) or not expect or not all(isinstance(e, str) for e in expect):
                raise ValueError(f"{path}: item {n}: 'expect' must be a list of intent ids or null")
            unknown = [e for e in expect if known_intents is not None and e not in known_intents]
            if unknown:
                raise ValueError(f"{path}: item {n}: unknown intent(s) {unknown}")
            expect = tuple(expect)
        items.append(Item(raw["text"], expect))
    return items


def _outcome(item: Item, scores: Scores, th: Thresholds, matcher: Matcher) -> tuple[str | None, bool]:
    match = matcher.decide(scores, th)
    got = match.intent if match.decision == "answer" else (CLARIFY if match.decision == "clarify" else FALLBACK)
    if item.expect is None:
        return got, got == FALLBACK
    return got, got in item.expect


def _summary(items: Sequence[Item], scored: Sequence[Scores], th: Thresholds,
             matcher: Matcher) -> dict[str, Any]:
    crisis = matcher.crisis
    outcomes = [_outcome(i, s, th, matcher) for i, s in zip(items, scored)]
    in_scope = [(i, o) for i, o in zip(items, outcomes) if i.expect is not None]
    # Out-of-scope messages answered as a crisis (「レポート終わらなくて死にそう笑」 must not get 110).
    false_crisis = [s for i, s in zip(items, scored)
                    if i.expect is None and matcher.decide(s, th).is_crisis_answer(crisis)]
    oos = [o for i, o in zip(items, outcomes) if i.expect is None]
    crisis_items = [(i, o) for i, o in in_scope if set(i.expect or ()) & crisis]
    return {
        "accuracy": _rate(sum(ok for _, ok in outcomes), len(items)),
        "in_scope_accuracy": _rate(sum(ok for _, (_, ok) in in_scope), len(in_scope)),
        "out_of_scope_fallback": _rate(sum(ok for _, ok in oos), len(oos)),
        "crisis_recall": _rate(sum(ok for _, (_, ok) in crisis_items), len(crisis_items)),
        "fallback_rate": _rate(sum(g == FALLBACK for g, _ in outcomes), len(items)),
        "clarify_rate": _rate(sum(g == CLARIFY for g, _ in outcomes), len(items)),
        "false_crisis": _rate(len(false_crisis), len(items) - len(in_scope)),
    }


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def evaluate(matcher: Matcher, items: Sequence[Item]) -> dict[str, Any]:
    th = matcher.thresholds
    scored = [matcher.score(i.text) for i in items]
    outcomes = [_outcome(i, s, th, matcher) for i, s in zip(items, scored)]

    per_intent: dict[str, dict[str, float]] = {}
    for intent in matcher.intent_ids:
        tp = sum(got == intent and ok for (got, ok) in outcomes)
        fp = sum(got == intent and not ok for (got, ok) in outcomes)
        fn = sum(bool(i.expect and i.expect[0] == intent) and not ok for i, (_, ok) in zip(items, outcomes))
        support = sum(bool(i.expect and intent in i.expect) for i in items)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_intent[intent] = {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3), "support": support}

    confused = Counter(
        (i.expect[0] if i.expect else FALLBACK, got) for i, (got, ok) in zip(items, outcomes) if not ok
    )
    errors = [
        {"text": i.text, "expect": list(i.expect) if i.expect else None, "got": got,
         "top": [[c.intent, c.score] for c in s.intents[:2]], "out_of_scope": s.out_of_scope}
        for i, s, (got, ok) in zip(items, scored, outcomes) if not ok
    ]
    sweep = []
    for confident in (15, 20, 25, 30, 40):
        for floor in (10, 15, 20, 25, 30):
            if floor > confident:
                continue
            trial = th.model_copy(update={"confident": confident, "floor": floor})
            sweep.append({"confident": confident, "floor": floor, **_summary(items, scored, trial, matcher)})
    crisis_sweep = [
        {"crisis_strong": strong, **_summary(items, scored, th.model_copy(update={"crisis_strong": strong}), matcher)}
        for strong in (50, 60, 70, 80, 101)
    ]
    return {
        "items": len(items),
        "out_of_scope_items": sum(i.expect is None for i in items),
        "thresholds": th.model_dump(),
        **_summary(items, scored, th, matcher),
        "per_intent": per_intent,
        "confused_pairs": [{"expected": e, "got": g, "count": n} for (e, g), n in confused.most_common(15)],
        "threshold_sweep": sweep,
        "crisis_sweep": crisis_sweep,
        "errors": errors,
    }


def format_report(report: dict[str, Any]) -> str:
    pct = lambda v: "n/a" if v is None else f"{v * 100:.1f}%"  # noqa: E731
    th = report["thresholds"]
    lines = [
        f"items: {report['items']} ({report['out_of_scope_items']} out of scope)",
        f"thresholds: confident={th['confident']} margin={th['margin']} floor={th['floor']} "
        f"crisis_strong={th['crisis_strong']}",
        f"accuracy:               {pct(report['accuracy'])}",
        f"in-scope accuracy:      {pct(report['in_scope_accuracy'])}",
        f"crisis recall:          {pct(report['crisis_recall'])}",
        f"out-of-scope fallback:  {pct(report['out_of_scope_fallback'])}",
        f"false crisis (out of scope): {pct(report['false_crisis'])}",
        f"fallback rate:          {pct(report['fallback_rate'])}",
        f"clarify rate:           {pct(report['clarify_rate'])}",
        "",
        f"{'intent':<26}{'prec':>7}{'recall':>8}{'f1':>7}{'n':>5}",
    ]
    for intent, v in report["per_intent"].items():
        lines.append(f"{intent:<26}{v['precision']:>7.2f}{v['recall']:>8.2f}{v['f1']:>7.2f}{v['support']:>5}")
    lines += ["", "most confused (expected -> got):"]
    lines += [f"  {c['count']:>3}  {c['expected']} -> {c['got']}" for c in report["confused_pairs"]] or ["  none"]
    lines += ["", "threshold sweep (confident, floor): accuracy / crisis recall / out-of-scope fallback"]
    for row in report["threshold_sweep"]:
        lines.append(f"  {row['confident']:>3} {row['floor']:>3}: {pct(row['accuracy']):>6} / "
                     f"{pct(row['crisis_recall']):>6} / {pct(row['out_of_scope_fallback']):>6}")
    lines += ["", "crisis_strong sweep (the classifier alone answers a crisis): accuracy / crisis recall / "
                  "out-of-scope fallback"]
    for row in report["crisis_sweep"]:
        lines.append(f"  {row['crisis_strong']:>3}: {pct(row['accuracy']):>6} / "
                     f"{pct(row['crisis_recall']):>6} / {pct(row['out_of_scope_fallback']):>6}")
    if report["errors"]:
        lines += ["", f"errors ({len(report['errors'])}):"]
        for e in report["errors"]:
            lines.append(f"  {e['text']!r}: expected {e['expect']} got {e['got']} (top {e['top']}, oos {e['out_of_scope']})")
    return "\n".join(lines)
