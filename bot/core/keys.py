"""Every Redis key name the bot uses, in one place: what is stored, and so what must be
dropped (docs/safety.md §3: no resident text, ids only salted where they name a person;
who was sent what is forgotten once a delivery is finished)."""

from __future__ import annotations

ALERTS_ACTIVE = "alerts:active"  # alerts (and digest groups) not finished yet
CAMPAIGNS_ACTIVE = "campaigns:active"


def alert_key(alert_id: str) -> str:
    return f"alert:{alert_id}"


def campaign_key(campaign_id: str) -> str:
    return f"campaign:{campaign_id}"


def digest_key(city_id: str, day: str) -> str:
    return f"digest:{city_id}:{day}"


def lease_key(item_key: str) -> str:
    """The lease of a delivery (one worker at a time): `alert:<id>:lease`, `campaign:<id>:lease`."""
    return f"{item_key}:lease"


# Subscriptions (bot.broadcast.subscriptions): per resident a hash, per area and topic a set.
def sub_user_key(city: str, user_id: str) -> str:
    return f"sub:{city}:user:{user_id}"


def sub_set_key(city: str, kind: str, value: str) -> str:
    """`sub:<city>:area:<area>` or `sub:<city>:topic:<topic>`: the residents who chose it."""
    return f"sub:{city}:{kind}:{value}"


def sub_english_key(city: str) -> str:
    return f"sub:{city}:lang:en"


def sub_digest_key(city: str) -> str:
    return f"sub:{city}:digest"


# Conversations (bot.conversation.state): keyed by a salted hash of the LINE user id.
def conversation_key(hashed_user: str) -> str:
    """hash, TTL 30 min: the last answer, pending choices, the notice shown."""
    return f"conv:{hashed_user}"


def preference_key(hashed_user: str) -> str:
    """hash, no TTL: the chosen language. Deleted on unfollow."""
    return f"pref:{hashed_user}"


def intent_count_key(intent: str, day: str) -> str:
    """counter without any user id: answers of an intent on a day (JST)."""
    return f"stats:intent:{intent}:{day}"


def message_key(message_id: str) -> str:
    return f"msg:{message_id}"


def webhook_event_key(event_id: str) -> str:
    """set once per webhookEventId: a redelivered event is handled once."""
    return f"webhook:{event_id}"


def rate_limit_key(name: str) -> str:
    """the GCRA limiter's next slot, shared by every worker (bot.line.ratelimit)."""
    return f"ratelimit:{name}"


def daily_cap_key(day: str) -> str:
    """hash resident -> the alerts counted for them on a day (the daily cap)."""
    return f"alertcap:{day}"


def link_key(token: str) -> str:
    """a tracked link: campaign, variant and survey URL, never the resident."""
    return f"link:{token}"


def scratch_key(purpose: str, token: str) -> str:
    """a short-lived working set (e.g. the union of areas while counting a reach); expires in a minute."""
    return f"scratch:{purpose}:{token}"
