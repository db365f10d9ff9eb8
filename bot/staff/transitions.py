"""Every change of an alert's or campaign's state, as one explicit table checked on the server.

draft → awaiting_approval → approved → queued | scheduled → sending → done (or stopped);
an approver may reject (back to the author, with a reason); a draft may be discarded and a
queued or scheduled delivery cancelled. The console, the staff API and the CLI all go through
`check`, so none of them can take a path the table does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.staff.errors import Conflict, Forbidden
from bot.staff.roles import ROLE_LABELS, Actor

STATE_LABELS = {
    "draft": "下書き", "awaiting_approval": "承認待ち", "approved": "承認済み", "rejected": "差し戻し",
    "scheduled": "予約済み", "queued": "送信待ち", "sending": "送信中", "done": "送信完了",
    "stopped": "停止（LINEの月間上限）", "cancelled": "取り消し",
}
STATES = tuple(STATE_LABELS)
# Alerts an approver may send alone, without a second approver (recorded as such).
SOLE_TOPICS = ("emergency", "missing")


@dataclass(frozen=True)
class Transition:
    sources: frozenset[str]
    target: str | None  # None: the state stays (an edit)
    role: str | None  # None: the delivery itself (workers), never a person


def _t(sources: str, target: str | None, role: str | None) -> Transition:
    return Transition(frozenset(sources.split()), target, role)


TRANSITIONS: dict[str, Transition] = {
    "edit": _t("draft rejected awaiting_approval", None, "editor"),
    "submit": _t("draft rejected", "awaiting_approval", "editor"),
    "discard": _t("draft rejected awaiting_approval", "cancelled", "editor"),
    "approve": _t("awaiting_approval", "approved", "approver"),
    "reject": _t("awaiting_approval", "rejected", "approver"),
    # emergency and missing-person alerts only (SOLE_TOPICS): no second approver
    "send_alone": _t("draft rejected awaiting_approval", "approved", "approver"),
    "queue": _t("approved", "queued", "approver"),
    "schedule": _t("approved", "scheduled", "approver"),
    "cancel": _t("approved queued scheduled", "cancelled", "approver"),
    "start": _t("queued scheduled", "sending", None),
    "finish": _t("queued scheduled sending", "done", None),
    "stop": _t("queued scheduled sending", "stopped", None),
}

_REFUSED = {
    "edit": "この状態では編集できません（{state}）。",
    "submit": "この状態では承認を依頼できません（{state}）。",
    "discard": "この状態では破棄できません（{state}）。",
    "approve": "承認待ちのものだけ承認できます（いまは{state}）。",
    "reject": "承認待ちのものだけ差し戻せます（いまは{state}）。",
    "send_alone": "この状態では送信できません（{state}）。",
    "queue": "承認済みのものだけ送信できます（いまは{state}）。",
    "schedule": "承認済みのものだけ予約できます（いまは{state}）。",
    "cancel": "送信が始まったもの、または終わったものは取り消せません（いまは{state}）。",
}


def check(action: str, state: str, actor: Actor | None, *, author_id: int | None = None,
          topic: str | None = None) -> str:
    """The state after `action`, or Forbidden / Conflict saying why not."""
    transition = TRANSITIONS[action]
    if transition.role is None:
        if actor is not None:
            raise Forbidden("配信の状態は配信処理だけが変えます。")
    else:
        if actor is None or not actor.can(transition.role):
            raise Forbidden(f"この操作には{ROLE_LABELS[transition.role]}以上の権限が必要です。")
        if action == "approve" and actor.id == author_id:
            raise Forbidden("自分で作成したものは承認できません。ほかの承認者に依頼してください。")
        if action == "send_alone" and topic not in SOLE_TOPICS:
            raise Forbidden("承認者ひとりで送れるのは「緊急」と「行方不明」のお知らせだけです。")
    if state not in transition.sources:
        raise Conflict(_REFUSED.get(action, "この操作はいまの状態ではできません（{state}）。")
                       .format(state=STATE_LABELS.get(state, state)))
    return transition.target or state
