"""Our postback protocol: `act=<name>&<params>`, built and parsed strictly.

Rich-menu buttons (content), answers (conversation) and surveys (broadcast) all make
postbacks, and the content loader checks every button's data, so the protocol sits
below all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

# LINE's limit on a postback action's data (characters).
MAX_POSTBACK_DATA = 300

# act -> the parameters it takes. Anything else is not ours and gets the menu.
POSTBACK_ACTS: Mapping[str, frozenset[str]] = {
    "menu": frozenset(),
    "intent": frozenset({"id"}),
    # 「ほかの窓口」「電話番号の一覧」 name the answer they are about (i), so they work
    # when the conversation state is gone
    "more": frozenset({"i"}),
    "phones": frozenset({"i"}),
    "switch": frozenset(),
    "notice": frozenset(),
    # onboarding and alert settings
    "lang": frozenset({"l"}),
    "areas": frozenset(),
    "area": frozenset({"a"}),
    "topics": frozenset(),
    "topic": frozenset({"t"}),
    "done": frozenset(),
    "settings": frozenset(),
    "mode": frozenset({"m"}),  # alert delivery: now | digest
    "stop": frozenset(),
    # an in-chat survey answer: campaign, question index, option index
    "answer": frozenset({"c", "q", "o"}),
}


@dataclass(frozen=True)
class Postback:
    act: str
    params: Mapping[str, str]


def postback_data(act: str, **params: str) -> str:
    assert act in POSTBACK_ACTS and set(params) == POSTBACK_ACTS[act], (act, params)
    return urlencode({"act": act, **params})


def parse_postback(data: str) -> Postback | None:
    """Our postback, or None for anything malformed or unknown."""
    if not isinstance(data, str) or not data or len(data) > MAX_POSTBACK_DATA:
        return None
    try:
        pairs = parse_qsl(data, keep_blank_values=False, strict_parsing=True)
    except ValueError:
        return None
    params = dict(pairs)
    if len(params) != len(pairs):
        return None
    act = params.pop("act", None)
    if act is None or act not in POSTBACK_ACTS or set(params) != POSTBACK_ACTS[act]:
        return None
    return Postback(act, params)
