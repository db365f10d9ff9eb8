"""Staff accounts: passwords hashed with argon2, API tokens shown once and stored as a hash,
accounts disabled rather than deleted (the audit log and the history name them)."""

from __future__ import annotations

import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.staff import audit
from bot.staff.db import Database
from bot.staff.errors import Conflict, NotFound, StaffError
from bot.staff.models import ApiToken, Staff, utcnow
from bot.staff.roles import ROLES, Actor

MIN_PASSWORD = 12
NAME = re.compile(r"^[\w.@-]{2,64}$")
_hasher = PasswordHasher()
# Verified when the name is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-password-anyone-has")


def _actor(staff: Staff) -> Actor:
    return Actor(staff.id, staff.name, staff.role)


def _find(session: Session, name: str) -> Staff:
    staff = session.scalar(select(Staff).where(Staff.name == name))
    if staff is None:
        raise NotFound(f"職員「{name}」は登録されていません。")
    return staff


def add_staff(database: Database, by: str | None, name: str, role: str, password: str) -> Actor:
    if not NAME.match(name):
        raise StaffError("名前は2〜64文字の英数字・かな漢字と . _ @ - で入力してください。")
    if role not in ROLES:
        raise StaffError(f"役割は {'、'.join(ROLES)} のどれかです。")
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"パスワードは{MIN_PASSWORD}文字以上にしてください。")
    with database.session() as session:
        if session.scalar(select(Staff).where(Staff.name == name)) is not None:
            raise Conflict(f"職員「{name}」はすでに登録されています。")
        staff = Staff(name=name, role=role, password_hash=_hasher.hash(password), active=True)
        session.add(staff)
        session.flush()
        audit.record(session, by, "account_add", "staff", name, role=role)
        return _actor(staff)


def authenticate(database: Database, name: str, password: str) -> Actor | None:
    """The account if the name and password match an active one; every attempt is audited."""
    with database.session() as session:
        staff = session.scalar(select(Staff).where(Staff.name == name))
        ok = False
        try:
            ok = _hasher.verify(staff.password_hash if staff else _DUMMY_HASH, password) and staff is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or staff is None or not staff.active:
            audit.record(session, None, "login_failed", "session", None, name=name[:64])
            return None
        if _hasher.check_needs_rehash(staff.password_hash):
            staff.password_hash = _hasher.hash(password)
        audit.record(session, staff.name, "login", "session", None)
        return _actor(staff)


def active(database: Database, staff_id: int) -> Actor | None:
    """The account behind a console session, while it is still active."""
    with database.session() as session:
        staff = session.get(Staff, staff_id)
        return _actor(staff) if staff is not None and staff.active else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(database: Database, by: str | None, name: str) -> str:
    """A new API token for `name`: returned once, kept only as its hash."""
    token = "kb_" + secrets.token_urlsafe(32)
    with database.session() as session:
        staff = _find(session, name)
        if not staff.active:
            raise Conflict(f"職員「{name}」は停止されています。")
        session.add(ApiToken(staff_id=staff.id, token_hash=_token_hash(token)))
        audit.record(session, by, "token_issue", "staff", name)
    return token


def revoke_tokens(database: Database, by: str | None, name: str) -> int:
    with database.session() as session:
        staff = _find(session, name)
        tokens = session.scalars(select(ApiToken).where(ApiToken.staff_id == staff.id,
                                                        ApiToken.revoked_at.is_(None))).all()
        for token in tokens:
            token.revoked_at = utcnow()
        audit.record(session, by, "token_revoke", "staff", name, count=len(tokens))
        return len(tokens)


def disable(database: Database, by: str | None, name: str) -> None:
    """The account can no longer sign in or use its tokens; its records stay."""
    with database.session() as session:
        staff = _find(session, name)
        staff.active = False
        for token in session.scalars(select(ApiToken).where(ApiToken.staff_id == staff.id,
                                                            ApiToken.revoked_at.is_(None))):
            token.revoked_at = utcnow()
        audit.record(session, by, "account_disable", "staff", name)


def actor_for_token(database: Database, token: str) -> Actor | None:
    with database.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token),
                                                    ApiToken.revoked_at.is_(None)))
        if row is None or not row.staff.active:
            return None
        row.last_used_at = utcnow()
        return _actor(row.staff)


def all_staff(database: Database) -> list[Staff]:
    with database.session() as session:
        return list(session.scalars(select(Staff).order_by(Staff.name)))

