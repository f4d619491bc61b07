"""Settings read from environment variables, each declared once: its variable, default, parser and meaning.

A settings class is a frozen dataclass whose fields are made with `variable(...)`. `read(cls, environ)` parses each
field from its variable (or takes the default when the variable is unset or blank) and `describe(cls)` lists them
for `--help` and the start-up log. A value that cannot be parsed is a UserError naming the variable and what it
takes. Standard library only, no side effects at import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")
Parser = Callable[[str, str], Any]  # (variable name, raw text) -> value


@dataclass(frozen=True)
class Variable:
    name: str
    parse: Parser
    meaning: str
    shown_default: str  # the default as --help prints it


def variable(name: str, default: Any, meaning: str, parse: Parser, shown_default: str | None = None) -> Any:
    """A dataclass field read from the environment variable `name`."""
    shown = shown_default if shown_default is not None else str(default)
    return field(default=default, metadata={"variable": Variable(name, parse, meaning, shown)})


def whole_number(minimum: int = 1, auto: str | None = None) -> Parser:
    """An integer >= minimum; with `auto`, that word (any case) means None: the program decides."""

    def parse(name: str, raw: str) -> int | None:
        if auto is not None and raw.lower() == auto:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < minimum:
            also = f" or {auto}" if auto else ""
            raise UserError(f"{name}={raw!r} is not a whole number >= {minimum}.", f"Set {name} to one{also}.")
        return value

    return parse


def decimal(low: float, high: float) -> Parser:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise UserError(f"{name}={raw!r} is not a number from {low:g} to {high:g}.", f"Set {name} in that range.")
        return value

    return parse


def choice(*choices: str, upper: bool = False) -> Parser:
    """One of `choices`, in any case (returned lower case, or upper case with `upper`)."""

    def parse(name: str, raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in choices:
            raise UserError(f"{name}={raw!r} is not one of {', '.join(choices)}.", f"Set {name} to one of those.")
        return value

    return parse


def switch(name: str, raw: str) -> bool:
    value = raw.lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise UserError(f"{name}={raw!r} is not on or off.", f"Set {name} to on or off (true/false, 1/0).")


def text(name: str, raw: str) -> str:
    return raw


def read(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """An instance of the settings class `cls` from `environ` (default: os.environ)."""
    environ = os.environ if environ is None else environ
    values = {}
    for spec in fields(cls):
        declared: Variable = spec.metadata["variable"]
        raw = (environ.get(declared.name) or "").strip()
        if raw:
            values[spec.name] = declared.parse(declared.name, raw)
    return cls(**values)


def describe(cls: type) -> list[tuple[str, str, str]]:
    """(variable, default as shown, meaning) for every field of `cls`, in declaration order."""
    rows = []
    for spec in fields(cls):
        declared: Variable = spec.metadata["variable"]
        rows.append((declared.name, declared.shown_default, declared.meaning))
    return rows
