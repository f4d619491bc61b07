"""Checkpoints in /opt/ml/checkpoints that survive kills, spot interruptions and partial S3 syncs.

Each checkpoint is a directory written under a temporary name and renamed into place, so a killed write leaves
only a temporary directory that is ignored and cleaned. Its manifest, written last, lists every file and its size:
SageMaker syncs this directory to S3 file by file, and a checkpoint restored from a half-finished upload fails the
manifest check and is skipped in favour of the previous one. Two kinds live here: `step-N` (everything needed to
resume) and `best-N` (the weights of the best model so far, so a resumed job still knows its best).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from . import faults

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "training_state.pt"
MANIFEST_FILE = "manifest.json"
TEMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = root
        self.keep = keep

    # -- writing ---------------------------------------------------------------------------------------------------

    def _write(self, kind: str, step: int, model: torch.nn.Module, state: dict | None, info: dict) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"{kind}-{step:09d}"
        if self._is_complete(final):  # a resumed job stopped again before its next step: nothing new to write
            return final
        temp = self.root / f"{TEMP_PREFIX}{final.name}-{os.getpid()}"
        shutil.rmtree(temp, ignore_errors=True)
        try:
            with faults.writing(f"a checkpoint (step {step})", self.root):
                self._write_files(temp, step, model, state, info)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)  # a full volume gets its room back for the model and the logs
            raise
        shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover of the same step
        os.rename(temp, final)
        _fsync_dir(self.root)
        self._prune(kind)
        return final

    @staticmethod
    def _write_files(temp: Path, step: int, model: torch.nn.Module, state: dict | None, info: dict) -> None:
        temp.mkdir()
        save_model(model, str(temp / WEIGHTS_FILE))
        if state is not None:
            torch.save(state, temp / STATE_FILE)
        files = {p.name: p.stat().st_size for p in temp.iterdir()}
        (temp / MANIFEST_FILE).write_text(json.dumps({"step": step, "files": files, **info}))
        for path in temp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())

    def save(self, step: int, model: torch.nn.Module, state: dict) -> Path:
        path = self._write("step", step, model, state, {})
        log.info("Checkpoint saved: %s", path)
        return path

    def save_best(self, step: int, model: torch.nn.Module, metric_name: str, value: float) -> Path:
        return self._write("best", step, model, None, {"metric": metric_name, "value": value})

    def _prune(self, kind: str) -> None:
        complete = self._complete(kind)
        keep = self.keep if kind == "step" else 1
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        for temp in self.root.glob(f"{TEMP_PREFIX}*"):
            if not temp.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(temp, ignore_errors=True)

    # -- reading ---------------------------------------------------------------------------------------------------

    def _complete(self, kind: str) -> list[Path]:
        """Complete checkpoints of a kind, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob(f"{kind}-*")):
            if self._is_complete(path):
                found.append(path)
            else:
                log.warning("Ignoring incomplete checkpoint %s (files missing or truncated).", path)
        return found

    @staticmethod
    def _is_complete(path: Path) -> bool:
        try:
            manifest = json.loads((path / MANIFEST_FILE).read_text())
            return all((path / name).stat().st_size == size for name, size in manifest["files"].items())
        except (OSError, ValueError, KeyError):
            return False

    def latest(self) -> Path | None:
        complete = self._complete("step")
        return complete[-1] if complete else None

    def best(self) -> Path | None:
        complete = self._complete("best")
        return complete[-1] if complete else None

    @staticmethod
    def load_weights(path: Path, model: torch.nn.Module) -> None:
        load_model(model, str(path / WEIGHTS_FILE), device=str(next(model.parameters()).device))

    @staticmethod
    def load_state(path: Path) -> dict:
        return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
