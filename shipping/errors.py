"""Errors a person can act on: what was wrong, then what to do about it."""

from __future__ import annotations


class ShipError(Exception):
    """A problem with the user's settings, account or image, not a bug in this tool: `cause`, then `remedy`."""

    def __init__(self, cause: str, remedy: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.cause}\n  {self.remedy}"


class JobFailed(Exception):
    """SageMaker ran what we asked and it failed (a training job, an endpoint, a transform): its reason."""
