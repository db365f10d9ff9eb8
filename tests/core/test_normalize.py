from bot.core.normalize import Normalizer, fold


def test_width_case_and_kana_fold_to_one_form():
    assert fold("ｻｷﾞ") == fold("サギ") == fold("さぎ") == "さぎ"
    assert fold("ＤＶ") == fold("dv") == "dv"
    assert fold("Someone  IS following") == "someone is following"
    assert fold("詐欺 かも") == "詐欺かも"


def test_long_vowel_marks_fold_and_punctuation_emoji_spaces_drop():
    assert fold("ケ〜サツ！！😭 呼んで…") == fold("ケーサツ呼んで") == "けーさつ呼んで"
    assert fold("ｽﾄｰｶｰ") == "すとーかー"  # kept: without ー it would hide in ですとか
    assert fold("助けて〜〜〜") == "助けてーー"


def test_repeated_characters_are_capped_at_two():
    assert fold("たすけてええええ") == "たすけてええ"
    assert fold("wwwww") == "ww"


def test_synonyms_fold_variants_longest_first():
    n = Normalizer({"詐欺": ["さぎ", "サギ"], "オレオレ詐欺": ["おれおれさぎ"], "dv": ["ＤＶ", "でぃーぶい"]})
    assert n("ｻｷﾞかも") == "詐欺かも"
    # the longer variant wins over the shorter one inside it
    assert n("おれおれさぎ") == fold("オレオレ詐欺")
    assert n("でぃーぶいされた") == "dvされた"


def test_latin_cues_match_whole_words_only():
    from bot.core.normalize import contains
    assert contains(fold("DVされてる"), "dv")
    assert not contains(fold("DVDを借りた"), "dv")
    assert not contains(fold("I need advice"), "dv")
    assert contains(fold("詐欺かも"), "詐欺")


def test_empty_and_symbol_only_text_normalises_to_nothing():
    assert fold("") == ""
    assert fold("👍👍！？") == ""
