"""What the staff surfaces (the console, the staff API) reach for in a request: the staff
context of this app, and the staff member the request was authenticated as (`g.actor`, set by
each surface's own check: a session, or a bearer token)."""

from __future__ import annotations

from flask import current_app, g

from bot.staff.records import Context
from bot.staff.roles import Actor


def ctx() -> Context:
    return current_app.extensions["bot"].staff_context()  # type: ignore[no-any-return]


def actor() -> Actor:
    return g.actor  # type: ignore[no-any-return]
