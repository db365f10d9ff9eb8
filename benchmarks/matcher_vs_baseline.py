"""The bot's matcher against a standard baseline on the labelled set: accuracy and latency.

Baseline: scikit-learn TF-IDF over character 1-3-grams of the same training
examples (intents + out-of-scope), nearest example by cosine similarity, with
the out-of-scope examples as a "fallback" class and a similarity floor tuned on
nothing but the training examples themselves (leave-one-out would be fairer but
slower; the floor is printed). Both see the same normalised text.

Prints accuracy (an answer counts when it is one of the acceptable intents; a
fallback counts for out-of-scope items), crisis recall, out-of-scope fallback,
and matching latency p50/p99 per message for both. No pass/fail.

The bot's matcher is a linear SVM over the same kind of n-grams (plus kana readings
and English words), with fuzzy evidence, keywords and thresholds (bot/understanding/matcher.py);
the baseline is the nearest example and nothing else.

Run: .venv/bin/python benchmarks/matcher_vs_baseline.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from bot.content.loader import load_catalog
from bot.understanding.evaluate import evaluate, load_items
from bot.understanding.matcher import Matcher

ROOT = Path(__file__).resolve().parent.parent

FALLBACK = None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    catalog = load_catalog(ROOT)
    matcher = Matcher(catalog)
    items = load_items(ROOT / "tests" / "data" / "labelled.yaml", set(catalog.by_id))
    crisis = {i.id for i in catalog.intents if i.priority == "crisis"}

    # ---- the bot
    report = evaluate(matcher, items)
    bot_ms = []
    for _ in range(3):
        for item in items:
            t0 = time.perf_counter()
            matcher.match(item.text)
            bot_ms.append((time.perf_counter() - t0) * 1000)

    # ---- the baseline
    texts, labels = [], []
    for intent in catalog.intents:
        texts += [matcher.normalize(e) for e in intent.examples]
        labels += [intent.id] * len(intent.examples)
    texts += [matcher.normalize(e) for e in catalog.out_of_scope]
    labels += [FALLBACK] * len(catalog.out_of_scope)
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    matrix = vectorizer.fit_transform(texts)
    floors = {}
    for floor in (0.0, 0.1, 0.2, 0.3, 0.4):
        floors[floor] = floor
    base_ms = []

    def baseline(text: str, floor: float) -> str | None:
        vec = vectorizer.transform([matcher.normalize(text)])
        sims = (matrix @ vec.T).toarray().ravel()
        best = int(np.argmax(sims))
        return labels[best] if sims[best] >= floor else FALLBACK

    results = {}
    for floor in floors:
        hits = crisis_hits = crisis_total = oos_hits = oos_total = 0
        for item in items:
            t0 = time.perf_counter()
            got = baseline(item.text, floor)
            base_ms.append((time.perf_counter() - t0) * 1000)
            if item.expect is None:
                oos_total += 1
                oos_hits += got is FALLBACK
                hits += got is FALLBACK
            else:
                hits += got in item.expect
                if set(item.expect) & crisis:
                    crisis_total += 1
                    crisis_hits += got in item.expect
        results[floor] = (hits / len(items), crisis_hits / crisis_total, oos_hits / oos_total)
    best_floor = max(results, key=lambda f: results[f][0])

    examples = sum(len(i.examples) for i in catalog.intents)
    print(f"labelled set: {len(items)} items ({sum(i.expect is None for i in items)} out of scope); "
          f"catalogue: {len(catalog.intents)} intents, {examples} examples + {len(catalog.out_of_scope)} out-of-scope")
    print(f"{'':28}{'accuracy':>9}{'crisis rec':>11}{'oos fallback':>13}{'p50 ms':>8}{'p99 ms':>8}")
    print(f"{'bot matcher':28}{report['accuracy']:>9.3f}{report['crisis_recall']:>11.3f}"
          f"{report['out_of_scope_fallback']:>13.3f}{percentile(bot_ms, .5):>8.2f}{percentile(bot_ms, .99):>8.2f}")
    for floor, (acc, crec, oos) in results.items():
        mark = " (best)" if floor == best_floor else ""
        print(f"{'tf-idf 1-3 NN, floor ' + str(floor) + mark:28}{acc:>9.3f}{crec:>11.3f}{oos:>13.3f}"
              f"{percentile(base_ms, .5):>8.2f}{percentile(base_ms, .99):>8.2f}")
    print(f"bot latency mean {statistics.fmean(bot_ms):.2f} ms over {len(bot_ms)} matches")


if __name__ == "__main__":
    main()
