"""The model artifact: the one thing `train` writes and `serve` reads.

A model directory is a Hugging Face `save_pretrained` directory (config.json with id2label/label2id,
model.safetensors, tokenizer files) plus METADATA_FILE, which records what the config cannot: how texts were cut,
whether the task is multi-label, and how the model was made. Standard library only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UserError
from .windows import DEFAULT_MAX_CHUNKS

METADATA_FILE = "textclf.json"
FORMAT_VERSION = 2  # raised when a change would make an older `serve` misread the directory
# Version 2 added the long-text policy. A model that truncates reads the same in version 1, so it is written as 1
# and older images still serve it; one that reads windows is refused by them instead of served truncated.
FIRST_VERSION_OF = {"long_text": 2}
DEFAULT_THRESHOLD = 0.5  # multi-label decision threshold when training chose none (and for foreign models)


@dataclass
class ModelMetadata:
    labels: list[str]
    max_length: int
    multi_label: bool = False
    threshold: float = DEFAULT_THRESHOLD  # multi-label: a label is predicted when its sigmoid score reaches this
    text_pair: bool = False  # trained on (text, text_pair) inputs
    long_text: str = "truncate"  # textclf.windows: how texts over max_length are read (older models: truncate)
    chunk_stride: int | None = None
    max_chunks: int = DEFAULT_MAX_CHUNKS
    model_type: str = ""
    base_model: str = ""
    libraries: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, object] = field(default_factory=dict)
    metrics: dict[str, object] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def write(self, model_dir: Path) -> None:
        data = asdict(self)
        if self.long_text == "truncate":
            data["format_version"] = min(self.format_version, FIRST_VERSION_OF["long_text"] - 1)
        write_json_atomic(model_dir / METADATA_FILE, data)

    @classmethod
    def read(cls, model_dir: Path) -> ModelMetadata:
        data = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UserError(
                f"{model_dir / METADATA_FILE} has format_version {version!r}; this image reads up to {FORMAT_VERSION}.",
                "Serve the model with the image version that trained it, or a newer one.",
            )
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def find_model_dir(root: Path) -> Path:
    """The directory under `root` that holds config.json: root itself, or one level down (a tarred folder)."""
    if (root / "config.json").is_file():
        return root
    if root.is_dir():
        nested = sorted(p.parent for p in root.glob("*/config.json"))
        if len(nested) == 1:
            return nested[0]
        if len(nested) > 1:
            raise UserError(
                f"{root} holds several models ({', '.join(str(p) for p in nested)}).",
                "Put exactly one model directory (with its config.json) there.",
            )
    raise UserError(
        f"No model found in {root}: no config.json there or one level below.",
        "Point it at a directory written by `train` or by save_pretrained (config.json, weights, tokenizer).",
    )


def open_to_all_readers(model_dir: Path) -> None:
    """Make every file readable (and every directory listable) by any user. Some writers (safetensors) create
    files 0600, and the image may serve as another uid than the one that trained (`docker run --user`)."""
    for path in [model_dir, *model_dir.rglob("*")]:
        if path.is_symlink():
            continue
        wanted = 0o555 if path.is_dir() else 0o444
        mode = path.stat().st_mode
        if mode & wanted != wanted:  # only what we wrote: a mounted directory may belong to someone else
            path.chmod(mode | wanted)


def write_json_atomic(path: Path, data: object) -> None:
    """Write then rename, so that a reader (or a kill) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
