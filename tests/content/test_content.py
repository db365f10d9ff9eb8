"""Content validation: the shipped content is valid, and broken content is caught
with its file, key path and line, and the bot refuses to start on it."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from bot.cli import cmd_check
from bot.content.loader import load, load_catalog
from bot.content.schema import tel_digits
from bot.content.yamldoc import ContentError
from bot.runtime import build
from bot.settings import REPO_ROOT

DESKS_REFERENCE = REPO_ROOT / "docs" / "reference" / "desks.md"


def errors_of(root: Path) -> list[str]:
    _, problems = load(root)
    return [str(p) for p in problems if p.severity == "error"]


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_shipped_content_is_valid(catalog):
    assert {"kumamoto", "minato"} <= set(catalog.cities)
    for required in ("emergency", "suicide_crisis", "fraud_phone", "fraud_online", "dv"):
        assert required in catalog.by_id


def test_check_command_reports_ok_for_shipped_content(capsys):
    assert cmd_check(REPO_ROOT, quiet_warnings=True) == 0
    assert "OK:" in capsys.readouterr().out


def test_broken_yaml_names_file_and_line(content_copy, capsys):
    path = content_copy / "intents" / "fraud.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(5, "    - [unclosed")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cmd_check(content_copy) == 1
    out = capsys.readouterr().out
    assert re.search(r"error: intents/fraud\.yaml:\d+: YAML syntax", out), out
    assert "the bot will not start" in out


def test_unknown_key_is_reported_with_path_and_line(content_copy):
    path = content_copy / "content" / "kumamoto" / "answers.yaml"
    edit_yaml(path, lambda d: d["answers"]["fraud_phone"].update(dekss=["x"]))
    errors = errors_of(content_copy)
    assert any("content/kumamoto/answers.yaml:" in e and "answers.fraud_phone.dekss" in e and "unknown key" in e
               for e in errors), errors


def test_missing_answer_for_an_intent_is_an_error(content_copy):
    edit_yaml(content_copy / "content" / "minato" / "answers.yaml", lambda d: d["answers"].pop("dv"))
    assert any("no answer for intent 'dv' in city 'minato'" in e for e in errors_of(content_copy))


def test_unknown_desk_reference_is_an_error(content_copy):
    edit_yaml(content_copy / "content" / "kumamoto" / "answers.yaml",
              lambda d: d["answers"]["fraud_online"]["desks"].append("no_such_desk"))
    assert any("answers.fraud_online.desks[" in e and "unknown desk 'no_such_desk'" in e
               for e in errors_of(content_copy))


def test_crisis_answer_must_lead_with_110_or_119(content_copy):
    def lead_with_a_desk(d):
        d["answers"]["emergency"]["desks"].insert(0, "kumamoto_police_consultation_9110")
    edit_yaml(content_copy / "content" / "kumamoto" / "answers.yaml", lead_with_a_desk)
    assert any("must list 110 or 119 first" in e for e in errors_of(content_copy))


def test_label_naming_the_topic_is_rejected(content_copy):
    def label(d):
        d["menu"][0]["label"]["ja"] = "DV相談"
    edit_yaml(content_copy / "content" / "kumamoto" / "city.yaml", label)
    assert any("city.yaml" in e and "menu[0].label" in e and "neutral" in e for e in errors_of(content_copy))


def test_example_claimed_by_two_intents_is_an_error(content_copy):
    def steal(d):
        d["intents"][0]["examples"].append("夫に殴られる")
    edit_yaml(content_copy / "intents" / "fraud.yaml", steal)
    assert any("is also claimed by" in e for e in errors_of(content_copy))


def test_never_say_phrase_in_an_answer_is_an_error(content_copy):
    def blame(d):
        d["answers"]["dv"]["text"]["en"] += " Why didn't you leave earlier?"
    edit_yaml(content_copy / "content" / "kumamoto" / "answers.yaml", blame)
    assert any("never-say" in e and "answers.dv.text" in e for e in errors_of(content_copy))


def test_duplicate_yaml_key_is_an_error(content_copy):
    path = content_copy / "content" / "kumamoto" / "city.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\nid: kumamoto\n", encoding="utf-8")
    assert any("duplicate key" in e for e in errors_of(content_copy))


def test_desk_without_source_cannot_load(content_copy):
    edit_yaml(content_copy / "content" / "kumamoto" / "desks.yaml", lambda d: d["desks"][0].update(sources=[]))
    assert any("desks[0].sources" in e for e in errors_of(content_copy))


def test_invented_characters_in_a_phone_are_rejected(content_copy):
    edit_yaml(content_copy / "content" / "kumamoto" / "desks.yaml",
              lambda d: d["desks"][0]["phones"].append({"number": "call me maybe"}))
    assert any("desks[0].phones" in e for e in errors_of(content_copy))


def test_stale_desks_are_warnings_not_errors():
    _, problems = load(REPO_ROOT, today=dt.date(2026, 12, 3))
    stale = [p for p in problems if "re-confirm before launch" in p.message]
    assert stale and all(p.severity == "warning" for p in stale)


def test_bot_refuses_to_start_on_invalid_content(content_copy, settings):
    edit_yaml(content_copy / "content" / "minato" / "answers.yaml", lambda d: d["answers"].pop("fraud_phone"))
    with pytest.raises(ContentError) as raised:
        build(settings.with_(content_root=content_copy))
    assert "fraud_phone" in str(raised.value)


def test_unknown_city_fails_at_start_up(settings):
    with pytest.raises(KeyError, match="unknown city 'osaka'"):
        build(settings.with_(city="osaka"))


# -------------------------------------------------------- no invented numbers


def _reference_rows() -> dict[str, str]:
    rows = {}
    for line in DESKS_REFERENCE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`([a-z0-9_]+)`\s*\|", line)
        if match:
            rows[match.group(1)] = line
    return rows


def test_every_desk_and_number_comes_from_the_reference(catalog):
    """Each desk id exists in desks.md and each printed number stands in that desk's row."""
    rows = _reference_rows()
    for city in catalog.cities.values():
        for desk in city.desks.values():
            assert desk.id in rows, f"{desk.id} is not in desks.md"
            cells = rows[desk.id].split("|")
            phone_cell = cells[4]
            for phone in desk.phones:
                assert phone.number in phone_cell, f"{desk.id}: {phone.number!r} not in {phone_cell!r}"
                # the full number a button dials is in the reference too, with its source
                assert phone.dial is None or phone.dial in rows[desk.id], f"{desk.id}: {phone.dial!r} not in desks.md"


def test_a_number_no_phone_can_dial_cannot_load(content_copy):
    def cut_area_code(d):
        d["desks"][0]["phones"][0]["number"] = "3501-0110"
    edit_yaml(content_copy / "content" / "minato" / "desks.yaml", cut_area_code)
    assert any("cannot be dialled" in e and "dial:" in e for e in errors_of(content_copy))


def test_a_guard_or_cue_pattern_in_katakana_cannot_load(content_copy):
    edit_yaml(content_copy / "intents" / "_crisis.yaml", lambda d: d["cues"][0]["patterns"].append("カジ"))
    assert any("katakana" in e for e in errors_of(content_copy))


def test_desks_marked_without_a_number_have_none(catalog):
    rows = _reference_rows()
    for city in catalog.cities.values():
        for desk in city.desks.values():
            cell = rows[desk.id].split("|")[4].strip()
            if cell.startswith(("not given", "not verified", "no phone", "via the local")):
                assert not desk.phones, desk.id


def test_tel_digits_normalises_printed_slips():
    assert tel_digits("096-328- 2716") == "0963282716"
    assert tel_digits("＃９１１０") == "#9110"
    assert tel_digits("(096)381-0110") == "0963810110"


def test_reentry_answer_asking_about_the_offence_is_rejected(content_copy):
    def ask(d):
        d["answers"]["reentry_employment"]["text"]["ja"] += "\nどんな罪で服役していたか教えてください。"
    edit_yaml(content_copy / "content" / "kumamoto" / "answers_support.yaml", ask)
    assert any("never ask about the offence" in e for e in errors_of(content_copy))


def test_every_catalogue_intent_exists():
    catalogue = (REPO_ROOT / "docs" / "reference" / "intent-catalogue.md")
    ids = set(re.findall(r"^\| `([a-z_]+)` \|", catalogue.read_text(encoding="utf-8"), flags=re.M))
    assert len(ids) >= 36
    assert ids <= set(load_catalog(REPO_ROOT).by_id)


def test_easy_japanese_covers_every_card_button_and_notice(catalog):
    """やさしい日本語 mode: every interface string (buttons, the talk-history notice, card
    wording, the intent labels shown as 「もしかして」 and next-step buttons) and every desk
    line a resident reads has an easy version."""
    missing = [f"ui.{key}" for key, text in catalog.ui.items() if text.easy is None]
    missing += [f"intents.{intent.id}.label" for intent in catalog.intents if intent.label.easy is None]
    for city in catalog.cities.values():
        for desk in city.desks.values():
            for field in ("about", "hours"):
                text = getattr(desk, field)
                if text is not None and text.easy is None:
                    missing.append(f"{desk.id}.{field}")
            missing += [f"{desk.id}.phones.label" for p in desk.phones if p.label and p.label.easy is None]
        missing += [f"{city.id}.answers.{a}" for a, answer in city.answers.items() if answer.text.easy is None]
        config = city.config
        texts = {"fallback.text": config.fallback.text, "welcome": config.welcome,
                 "harmless_card.title": config.harmless_card.title, "harmless_card.body": config.harmless_card.body}
        texts |= {f"menu.{item.intent}": item.label for item in config.menu}
        texts |= {f"areas.{area.id}": area.label for area in config.areas}
        texts |= {f"topics.{topic.id}": topic.label for topic in config.topics}
        texts |= {f"topics.{topic.id}.alert_label": topic.alert_label for topic in config.topics if topic.alert_label}
        if config.triage:
            texts["triage.title"] = config.triage.title
            texts |= {f"triage.needs[{i}]": need.text for i, need in enumerate(config.triage.needs)}
        missing += [f"{city.id}.{where}" for where, text in texts.items() if text.easy is None]
    assert missing == []


def test_an_answer_that_promises_other_desks_has_them(catalog):
    """「つながらないときは、ほかの窓口も出せます」 with nothing behind 「ほかの窓口」 told a
    suicidal resident in Minato that there was no other line."""
    empty = [(city.id, a) for city in catalog.cities.values() for a, answer in city.answers.items()
             if "ほか" in answer.text.ja and not answer.more_desks]
    assert empty == []


# Remarks meant for staff that once reached residents' screens.
STAFF_REMARKS = ("この案内ではまだ", "確かめられていません", "計画に役割", "古い資料", "直通ではありません",
                 "This guide has not", "old source", "not the consultation room")


def test_no_staff_remark_reaches_a_resident(catalog):
    shown = []
    for city in catalog.cities.values():
        shown += [v for a in city.answers.values() for v in a.text.values()]
        for desk in city.desks.values():
            shown += [v for t in (desk.about, desk.hours) if t for v in t.values()]
            shown += [v for p in desk.phones if p.label for v in p.label.values()]
    shown += [v for t in catalog.ui.values() for v in t.values()]
    assert [s for s in shown if any(r in s for r in STAFF_REMARKS)] == []
