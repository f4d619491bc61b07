"""What this tool created, recorded in a small JSON file so that later commands find it (the last image, training
job and model) and cleanup deletes exactly that and nothing else.

Default place: .shipping/state.json in the current directory (git-ignored); --state-file or $TEXTCLF_SHIP_STATE
moves it. Each resource is recorded right after AWS accepted its creation, so a command that fails half-way still
leaves a record of what it made.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ShipError

STATE_ENV = "TEXTCLF_SHIP_STATE"
DEFAULT_PATH = Path(".shipping") / "state.json"
# The kinds cleanup deletes, in the order it deletes them (an endpoint uses its config, which uses the model).
DELETABLE_KINDS = ("endpoint", "endpoint-config", "model")


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    region: str


class State:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or os.environ.get(STATE_ENV) or DEFAULT_PATH)
        self._data = self._load()

    def _load(self) -> dict:
        if not self.path.exists():
            return {"last": {}, "created": []}
        try:
            data = json.loads(self.path.read_text())
            data.setdefault("last", {})
            data.setdefault("created", [])
            return data
        except (json.JSONDecodeError, AttributeError):
            raise ShipError(
                f"The state file {self.path} is not the JSON this tool writes.",
                "Restore it, or move it away (then cleanup no longer knows what was created), or pass --state-file.",
            ) from None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._data, indent=2) + "\n")
        temporary.replace(self.path)  # atomic: an interrupted write never leaves half a file

    def last(self, key: str, region: str) -> str | None:
        """The last image URI, training job or model recorded for `region`, or None."""
        entry = self._data["last"].get(key)
        return entry["value"] if entry and entry["region"] == region else None

    def set_last(self, key: str, value: str, region: str) -> None:
        self._data["last"][key] = {"value": value, "region": region}
        self._save()

    def record(self, kind: str, name: str, region: str) -> None:
        self._data["created"].append({"kind": kind, "name": name, "region": region})
        self._save()

    def forget(self, resource: Resource) -> None:
        wanted = {"kind": resource.kind, "name": resource.name, "region": resource.region}
        self._data["created"] = [entry for entry in self._data["created"] if entry != wanted]
        self._save()

    def created(self, region: str) -> list[Resource]:
        """The deletable resources recorded for `region`, in deletion order."""
        found = [Resource(**entry) for entry in self._data["created"] if entry["region"] == region]
        return sorted((r for r in found if r.kind in DELETABLE_KINDS), key=lambda r: DELETABLE_KINDS.index(r.kind))
