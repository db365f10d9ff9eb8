"""Redis key names of everything broadcast keeps: one place to read what is stored (and
so what is dropped: who was sent what is forgotten once a delivery is finished)."""

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
