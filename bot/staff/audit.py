"""The audit log: who did what to which alert, campaign or account, and when. Rows are only
ever added (bot.staff.models refuses an update or a delete)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import JST
from bot.staff.db import Database
from bot.staff.models import AuditEntry

ACTION_LABELS = {
    "login": "ログイン", "login_failed": "ログイン失敗", "logout": "ログアウト",
    "draft": "下書き作成", "edit": "編集", "submit": "承認依頼", "approve": "承認", "reject": "差し戻し",
    "send_alone": "単独送信（緊急）", "queue": "送信", "schedule": "予約", "cancel": "取り消し",
    "discard": "下書き破棄", "export": "書き出し",
    "account_add": "アカウント作成", "account_disable": "アカウント停止", "token_issue": "APIトークン発行",
    "token_revoke": "APIトークン失効", "delivered": "配信完了", "stopped": "配信停止",
}


def record(session: Session, actor: str | None, action: str, subject_type: str, subject_id: str | None = None,
           **detail: Any) -> None:
    session.add(AuditEntry(actor=actor, action=action, subject_type=subject_type, subject_id=subject_id,
                           detail=detail))


def entries(database: Database, *, limit: int = 200, offset: int = 0, actor: str | None = None,
            subject_id: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if subject_id:
        query = query.where(AuditEntry.subject_id == subject_id)
    with database.session() as session:
        return list(session.scalars(query))


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at.astimezone(JST).isoformat(), "actor": entry.actor,
            "action": entry.action, "subject_type": entry.subject_type, "subject_id": entry.subject_id,
            "detail": entry.detail}


def to_csv(rows: Sequence[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "日時", "職員", "操作", "対象", "対象ID", "詳細"])
    for row in rows:
        writer.writerow([row.id, row.at.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S"), row.actor or "（システム）",
                         ACTION_LABELS.get(row.action, row.action), row.subject_type, row.subject_id or "",
                         json.dumps(row.detail, ensure_ascii=False) if row.detail else ""])
    return "\ufeff" + out.getvalue()  # a BOM so that Excel opens the Japanese as UTF-8
