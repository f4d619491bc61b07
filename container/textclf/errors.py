"""Errors a person can act on: what was wrong, then what to change."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the job's input or settings, not a bug in this image.

    `cause` says what was wrong, `remedy` what to change. Both are written into SageMaker's failure file, whose
    first 1024 characters become the job's FailureReason, so the cause comes first and both stay short.
    """

    def __init__(self, cause: str, remedy: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.cause} {self.remedy}"
