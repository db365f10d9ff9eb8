"""What staff are told when the records refuse something: in Japanese, in their words. The
staff API answers with the same message and the HTTP status each error carries."""

from __future__ import annotations


class StaffError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(StaffError):
    status = 403


class NotFound(StaffError):
    status = 404


class Conflict(StaffError):
    status = 409
