"""Roles, from least to most: an editor drafts and edits; an approver also approves, rejects,
sends and cancels; an admin also manages accounts and reads the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["editor", "approver", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
ROLE_LABELS: dict[str, str] = {"editor": "作成者", "approver": "承認者", "admin": "管理者"}


@dataclass(frozen=True)
class Actor:
    """The signed-in staff member a request acts for (console session or API token)."""

    id: int
    name: str
    role: str

    def can(self, needed: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)  # type: ignore[arg-type]
