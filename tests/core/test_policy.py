from bot.core import policy


def test_forbidden_label_words_are_found_in_any_case_and_width():
    assert policy.forbidden_label_word("DV相談") == "DV"
    assert policy.forbidden_label_word("Domestic help") == "domestic"
    assert policy.forbidden_label_word("くらしの相談") is None


def test_never_say_catches_japanese_and_english():
    assert policy.never_say_phrase("それはあなたにも問題があるのでは") == "あなたにも問題がある"
    assert policy.never_say_phrase("Why didn't you leave him?") == "why didn't you leave"
    assert policy.never_say_phrase("あなたは悪くありません。") is None
