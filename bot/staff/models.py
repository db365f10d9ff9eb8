"""The city's records as tables. Times are stored in UTC and read back as aware datetimes
(SQLite keeps no time zone; PostgreSQL does), so both databases give the same answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, TypeDecorator, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class UTCDateTime(TypeDecorator[dt.datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give times with a time zone")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # editor | approver | admin (bot.staff.roles)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The staff member's own LINE account, linked with a one-time code: "send to me first".
    line_user_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    # sha256 of the token: tokens are 32 random bytes, so a fast hash is safe and lets a
    # request be matched by an index (a password needs argon2; a random token does not).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)

    staff: Mapped[Staff] = relationship(lazy="joined")


class AuditEntry(Base):
    """Append-only: the session refuses to change or delete one (see below)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(64))  # the staff name at the time; None: the system
    action: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(16))  # alert | campaign | staff | session | audit
    subject_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Broadcast(Base):
    """One alert or campaign, from the first draft to its delivery figures."""

    __tablename__ = "broadcasts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # alert | campaign
    city: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(24), index=True)  # bot.staff.transitions.STATES
    topic: Mapped[str] = mapped_column(String(64))  # campaigns: their topics joined by ","
    areas: Mapped[str] = mapped_column(String(400))
    title: Mapped[str] = mapped_column(String(200))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)  # what staff wrote, as validated
    send_mode: Mapped[str] = mapped_column(String(8), default="asap")  # asap | now | at
    send_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    author_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), default=None)
    # An emergency or missing-person alert an approver sent without a second approver.
    sole_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    reject_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    queued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # The delivery's id in Redis (bot.broadcast): set when it is queued.
    delivery_id: Mapped[str | None] = mapped_column(String(64), default=None)
    recipients: Mapped[int | None] = mapped_column(Integer, default=None)
    sent: Mapped[int | None] = mapped_column(Integer, default=None)
    failed: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)

    # joined: a record is always read with the names staff see beside it
    author: Mapped[Staff] = relationship(foreign_keys=[author_id], lazy="joined")
    approver: Mapped[Staff | None] = relationship(foreign_keys=[approver_id], lazy="joined")


@event.listens_for(Session, "before_flush")
def _audit_is_append_only(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEntry):
            raise PermissionError("the audit log is append-only")
