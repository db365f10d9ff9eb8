"""bot.line.signature: LINE's X-Line-Signature, checked through line-bot-sdk's SignatureValidator."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from bot.line.signature import sign, verify
from tests.line_helpers import OLD_SECRET, SECRET, body_of, text_event, user

BODY = body_of(text_event(user(1), "詐欺かも😱 電話でお金を要求された", "reply-token"))


def test_a_signature_from_sign_verifies():
    assert verify(BODY, sign(BODY, SECRET), [SECRET])
    assert verify(BODY.decode(), sign(BODY.decode(), SECRET), [SECRET])  # text and bytes alike
    assert sign(BODY.decode(), SECRET) == sign(BODY, SECRET)


def test_sign_is_lines_hmac_sha256_in_base64():
    expected = base64.b64encode(hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()).decode()
    assert sign(BODY, SECRET) == expected


def test_the_previous_secret_verifies_while_rotating():
    assert verify(BODY, sign(BODY, OLD_SECRET), [SECRET, OLD_SECRET])
    assert verify(BODY, sign(BODY, SECRET), [SECRET, OLD_SECRET])
    assert not verify(BODY, sign(BODY, OLD_SECRET), [SECRET])  # once rotated out, no longer


def test_empty_secrets_are_ignored():
    assert verify(BODY, sign(BODY, SECRET), ["", SECRET])
    assert not verify(BODY, sign(BODY, ""), ["", SECRET])  # a signature by an empty key proves nothing
    assert not verify(BODY, sign(BODY, ""), [""])


@pytest.mark.parametrize("signature", [
    sign(BODY, "some-other-secret"),   # wrong secret
    sign(BODY + b" ", SECRET),          # another body
    "",                                 # empty
    "not base64 at all!",               # not base64
    "bm90IGEgc2lnbmF0dXJl",             # base64, not a signature
    sign(BODY, SECRET)[:-2],            # cut short
    "é" + sign(BODY, SECRET),           # characters a header never carries
    "\udcff",                           # a lone surrogate: not even encodable
    None,                               # missing
])
def test_a_wrong_empty_or_garbled_signature_is_false(signature):
    assert verify(BODY, signature, [SECRET, OLD_SECRET]) is False


def test_no_secrets_is_false():
    assert verify(BODY, sign(BODY, SECRET), []) is False
    assert verify(BODY, sign(BODY, SECRET), ()) is False


def test_a_body_that_is_not_utf8_is_false_never_an_exception():
    raw = b'{"events": [], "x": "\xff\xfe"}'
    assert verify(raw, sign(raw, SECRET), [SECRET]) is False


def test_the_exact_bytes_count_not_the_json():
    reserialised = BODY.decode().encode("unicode_escape")  # the same JSON, other bytes
    assert not verify(BODY, sign(reserialised, SECRET), [SECRET])
