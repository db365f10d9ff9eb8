"""Matching latency per message on the labelled set (prints p50/p99, no pass/fail).

Run: .venv/bin/python benchmarks/matching_latency.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bot.content.loader import load_catalog
from bot.settings import REPO_ROOT
from bot.understanding.evaluate import evaluate, load_items
from bot.understanding.matcher import Matcher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    catalog = load_catalog(REPO_ROOT)
    matcher = Matcher(catalog)
    load_ms = (time.perf_counter() - started) * 1000
    items = load_items(REPO_ROOT / "tests" / "data" / "labelled.yaml", set(catalog.by_id))

    for item in items[:20]:  # warm-up
        matcher.match(item.text)
    timings = []
    for _ in range(args.repeat):
        for item in items:
            t0 = time.perf_counter()
            matcher.match(item.text)
            timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    p = lambda q: timings[min(len(timings) - 1, int(q * len(timings)))]  # noqa: E731
    report = evaluate(matcher, items)
    examples = sum(len(i.examples) for i in catalog.intents)
    print(f"catalogue: {len(catalog.intents)} intents, {examples} examples; load+index {load_ms:.0f} ms")
    print(f"messages timed: {len(timings)} ({len(items)} x {args.repeat})")
    print(f"latency ms: p50 {p(0.50):.3f}  p90 {p(0.90):.3f}  p99 {p(0.99):.3f}  max {timings[-1]:.3f}  "
          f"mean {statistics.fmean(timings):.3f}")
    print(f"accuracy {report['accuracy']:.3f}  crisis recall {report['crisis_recall']:.3f}  "
          f"out-of-scope fallback {report['out_of_scope_fallback']:.3f}")


if __name__ == "__main__":
    main()
