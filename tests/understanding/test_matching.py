"""The matcher on the shipped catalogue, and floors on the independent labelled set."""

from __future__ import annotations

import numpy as np
import pytest

from bot.settings import REPO_ROOT
from bot.understanding.evaluate import evaluate, load_items
from bot.understanding.matcher import Matcher, decide

LABELLED = REPO_ROOT / "tests" / "data" / "labelled.yaml"


@pytest.fixture(scope="module")
def matcher(catalog):
    return Matcher(catalog)


@pytest.mark.parametrize("text, intent", [
    ("息子を名乗る電話でお金を要求された", "fraud_phone"),
    ("夫に殴られる", "dv"),
    ("いま知らない人に後をつけられてる", "emergency"),
    ("もう死にたい", "suicide_crisis"),
    ("ｻｷﾞかも…還付金の電話きた", "fraud_phone"),
    ("someone is following me right now", "emergency"),
])
def test_clear_messages_are_answered(matcher, text, intent):
    match = matcher.match(text)
    assert (match.decision, match.intent) == ("answer", intent), match


@pytest.mark.parametrize("text", ["今日の天気は？", "燃えるごみの日はいつ？", "👍"])
def test_out_of_scope_falls_back(matcher, text):
    assert matcher.match(text).decision == "fallback"


def test_crisis_cue_wins_over_other_intents(matcher):
    # fraud words and a crisis cue together: the crisis is never lost
    match = matcher.match("詐欺でお金を全部とられて、もう死にたい")
    assert (match.decision, match.intent) == ("answer", "suicide_crisis")


def test_matching_is_deterministic(matcher):
    a = [matcher.score("旦那がスマホ全部チェックしてくる") for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_thresholds_drive_the_decision(matcher):
    scores = matcher.score("夫に殴られる")
    th = matcher.thresholds
    assert decide(scores, th, matcher.crisis).decision == "answer"
    raised = th.model_copy(update={"confident": 100.5, "floor": 100.5})
    assert decide(scores, raised, matcher.crisis).decision == "fallback"


def test_candidates_are_sorted_and_bounded(matcher):
    match = matcher.match("詐欺")
    scores = [c.score for c in match.candidates]
    assert scores == sorted(scores, reverse=True) and len(scores) <= 3


FAST_PATH_TEXTS = ["ｻｷﾞかも…還付金の電話きた", "しゅっしょご しごと さがしてる", "出所後の住まい",
                   "My son is being released next week", "😀", "a"]


@pytest.mark.parametrize("text", FAST_PATH_TEXTS)
def test_fast_path_agrees_with_scikit_learn(matcher, text):
    """score() builds the message's features, SVM margins and example similarities
    itself (scikit-learn's per-call overhead is the whole latency budget); they must
    equal what scikit-learn computes for the same message."""
    query = matcher.normalize(text)
    columns, weights = matcher._features.vector(query)
    reference = matcher._features.matrix([query])
    dense = np.zeros(reference.shape[1], dtype=np.float32)
    dense[columns] = weights
    np.testing.assert_allclose(dense, reference.toarray()[0], atol=1e-6)
    np.testing.assert_allclose(weights @ matcher._coef[columns] + matcher._intercept,
                               matcher._svm.decision_function(reference)[0], atol=1e-5)
    informative = matcher._informative
    expected = matcher._postings[:, columns[informative[columns]]] @ weights[informative[columns]]
    np.testing.assert_allclose(matcher._cosine(columns, weights), expected, atol=1e-5)


def test_readings_meet_kanji(matcher):
    """A message typed in kana (or half-width katakana) is matched through its reading."""
    for text in ["しゅっしょごの すまい さがしてる", "ｼｭｯｼｮｺﾞ ﾉ ｽﾏｲ"]:
        columns, _ = matcher._features.vector(matcher.normalize(text))
        assert len(columns), text
    kana = matcher._features.vector(matcher.normalize("しゅっしょご"))[0]
    kanji = matcher._features.vector(matcher.normalize("出所後"))[0]
    assert set(kana) & set(kanji), "the reading view shares no n-gram between 出所後 and しゅっしょご"


def test_labelled_set_floors(matcher, catalog):
    """Floors on the independently written labelled set (issue 2/4 targets)."""
    items = load_items(LABELLED, set(catalog.by_id))
    assert len(items) >= 400 and sum(i.expect is None for i in items) >= 40
    report = evaluate(matcher, items)
    assert report["crisis_recall"] >= FLOORS["crisis_recall"], [
        e for e in report["errors"] if e["expect"] and {"emergency", "suicide_crisis"} & set(e["expect"])]
    assert report["accuracy"] >= FLOORS["accuracy"], report["accuracy"]
    assert report["out_of_scope_fallback"] >= FLOORS["out_of_scope_fallback"], report["out_of_scope_fallback"]


# Issue 4's targets are accuracy 0.92, crisis recall 1.00 and fallback 0.85; the floors
# sit just under what the shipped catalogue measures (0.954 / 1.000 / 0.942), so a
# regression fails CI.
FLOORS = {"accuracy": 0.945, "crisis_recall": 1.0, "out_of_scope_fallback": 0.92}


def test_the_fitted_model_is_kept_by_content_and_refitted_when_it_changes(matcher, catalog, content_copy, tmp_path):
    """Start-ups reuse the fitted model (it costs about 3 s of CPU) only for the same
    content and code; a damaged cache file means a fresh fit, never a crash."""
    from bot.content.loader import load_catalog

    cache = tmp_path / "model-cache"
    first = Matcher(catalog, cache)
    (stored,) = cache.glob("matcher-*.pickle")
    again = Matcher(catalog, cache)  # from the file
    assert again.fingerprint == first.fingerprint == matcher.fingerprint
    for text in FAST_PATH_TEXTS + ["夫に殴られる", "還付金があるって電話きた", "今日の天気は？"]:
        assert again.match(text) == matcher.match(text)

    oos = content_copy / "intents" / "_out_of_scope.yaml"
    oos.write_text(oos.read_text(encoding="utf-8") + "  - 図書館の返却ポストはどこ？\n", encoding="utf-8")
    changed = Matcher(load_catalog(content_copy), cache)
    assert changed.fingerprint != first.fingerprint and len(list(cache.glob("matcher-*.pickle"))) == 2

    stored.write_bytes(b"not a model")
    damaged = Matcher(catalog, cache)
    assert damaged.match("夫に殴られる") == matcher.match("夫に殴られる")
