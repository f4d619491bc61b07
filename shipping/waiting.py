"""Polls a SageMaker describe call until the resource reaches a final status, printing a line when anything the
user would want to see changes (status, secondary status, metrics)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def wait_until_final(
    describe: Callable[[], dict],
    status_key: str,
    final: set[str],
    progress_line: Callable[[dict], str],
    poll_seconds: float,
) -> dict:
    """The last description, once its `status_key` is one of `final`."""
    shown = None
    while True:
        description = describe()
        line = progress_line(description)
        if line != shown:
            print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
            shown = line
        if description[status_key] in final:
            return description
        time.sleep(poll_seconds)


def failure_reason(description: dict) -> str:
    """What SageMaker said went wrong, from a final description that is not the one asked for."""
    return description.get("FailureReason") or "SageMaker gave no reason"


def say(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
