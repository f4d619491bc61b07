"""Reading a channel's files into labelled examples, and learning the label set.

A channel holds any number of `.csv`, `.tsv`, `.jsonl` or `.json` (JSON Lines, or one JSON array) files, each
optionally gzipped, possibly nested. Rows with an empty text or no label are skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

log = logging.getLogger(__name__)

READERS_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
Label = str | list[str]


@dataclass
class Example:
    text: str
    label: Label
    text_pair: str | None = None


@dataclass
class ChannelData:
    examples: list[Example]
    files: list[Path]
    skipped: Counter = field(default_factory=Counter)


def data_files(directory: Path) -> list[Path]:
    """Readable data files under `directory`, in a stable order; hidden files (e.g. S3 markers) are ignored."""
    found = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(directory).parts):
            continue
        if _reader_kind(path) is not None:
            found.append(path)
    return found


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _reader_kind(path: Path) -> str | None:
    """csv, tsv or jsonl from the name (a trailing .gz aside); None for a file this image does not read."""
    name = path.name.lower().removesuffix(".gz")
    return READERS_BY_SUFFIX.get(Path(name).suffix)


def iter_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) pairs from one file."""
    kind = _reader_kind(path)
    with _open_text(path) as handle:
        if kind in ("csv", "tsv"):
            reader = csv.DictReader(handle, delimiter="\t" if kind == "tsv" else ",")
            for row in reader:
                yield reader.line_num, row
            return
        first = handle.read(1)
        while first and first.isspace():
            first = handle.read(1)
        rest = handle.read()
        if first == "[":  # a whole-file JSON array
            for number, record in enumerate(_loads(path, first + rest, 1), start=1):
                yield number, record
            return
        for number, line in enumerate((first + rest).splitlines(), start=1):
            if line.strip():
                yield number, _loads(path, line, number)


def _loads(path: Path, text: str, line: int):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path.name} line {line} is not valid JSON ({exc.msg}).",
            "Write one JSON object per line (JSON Lines), or use a .csv file.",
        ) from None


def _coerce_label(value: object) -> Label | None:
    if value is None:
        return None
    if isinstance(value, list):
        labels = [str(v).strip() for v in value if v is not None and str(v).strip()]
        return labels
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):  # a list written into a CSV cell
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return text
        return _coerce_label(parsed) if isinstance(parsed, list) else text
    return text or None


def read_channel(directory: Path, text_column: str, label_column: str, text_pair_column: str | None) -> ChannelData:
    files = data_files(directory)
    if not files:
        present = sorted(p.name for p in directory.rglob("*") if p.is_file())[:10]
        raise UserError(
            f"Channel '{directory.name}' has no data files"
            + (f" (found: {', '.join(present)})." if present else " (the directory is empty)."),
            "Add .csv, .tsv, .jsonl or .json files (optionally .gz) to the channel's S3 prefix.",
        )
    data = ChannelData([], files)
    for path in files:
        for index, (line, record) in enumerate(iter_records(path)):
            if not isinstance(record, dict):
                raise UserError(
                    f"{path.name} line {line} is a JSON {type(record).__name__}, not an object.",
                    f'Write one object per line, like {{"{text_column}": "...", "{label_column}": "..."}}.',
                )
            if index == 0:  # columns are checked on each file's first row; later gaps count as bad rows
                _check_columns(path, record, text_column, label_column, text_pair_column)
            example = _example(record, text_column, label_column, text_pair_column, data.skipped)
            if example is not None:
                data.examples.append(example)
    if data.skipped:
        details = ", ".join(f"{count} with {reason}" for reason, count in sorted(data.skipped.items()))
        log.warning("Channel '%s': skipped %d rows (%s).", directory.name, sum(data.skipped.values()), details)
    if not data.examples:
        raise UserError(
            f"Channel '{directory.name}' has no usable rows in {len(files)} file(s)"
            + (f"; all were skipped ({dict(data.skipped)})." if data.skipped else "."),
            f"Each row needs a non-empty '{text_column}' and a '{label_column}'.",
        )
    return data


def _check_columns(path: Path, record: dict, text_column: str, label_column: str, pair_column: str | None) -> None:
    wanted = [("text_column", text_column), ("label_column", label_column)]
    if pair_column:
        wanted.append(("text_pair_column", pair_column))
    for knob, column in wanted:
        if column not in record:
            found = ", ".join(repr(k) for k in record) or "none"
            raise UserError(
                f"{path.name} has no column '{column}' (the {knob}); columns found: {found}.",
                f"Set the hyperparameter '{knob}' to one of those, or rename the column.",
            )


def _example(record: dict, text_column: str, label_column: str, pair_column: str | None, skipped: Counter):
    text = record.get(text_column)
    text = "" if text is None else str(text).strip()
    if not text:
        skipped["empty text"] += 1
        return None
    pair = None
    if pair_column:
        pair = record.get(pair_column)
        pair = "" if pair is None else str(pair).strip()
        if not pair:
            skipped["empty text pair"] += 1
            return None
    label = _coerce_label(record.get(label_column))
    if label is None or label == []:
        skipped["missing label"] += 1
        return None
    return Example(text, label, pair)


@dataclass(frozen=True)
class LabelSet:
    names: list[str]
    multi_label: bool

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.names)}

    def encode(self, label: Label) -> list[float] | int:
        """Class index (single-label) or a multi-hot vector (multi-label); unknown labels raise KeyError."""
        lookup = self.label2id
        if self.multi_label:
            vector = [0.0] * len(self.names)
            for name in label if isinstance(label, list) else [label]:
                vector[lookup[name]] = 1.0
            return vector
        return lookup[label]


def learn_labels(examples: list[Example], multi_label: bool | None) -> LabelSet:
    is_multi = any(isinstance(e.label, list) for e in examples) if multi_label is None else multi_label
    if not is_multi and any(isinstance(e.label, list) for e in examples):
        raise UserError(
            "Some labels are lists but the hyperparameter multi_label is false.",
            "Set multi_label to true, or give each row a single label.",
        )
    names: set[str] = set()
    for example in examples:
        names.update(example.label if isinstance(example.label, list) else [example.label])
    # Integers sort as numbers ("2" before "10"); names alphabetically.
    ordered = sorted(names, key=lambda n: (0, int(n), "") if n.lstrip("-").isdigit() else (1, 0, n))
    if len(ordered) < 2:
        raise UserError(
            f"The training data has only one label ({ordered[0]!r}); a classifier needs at least two.",
            "Check label_column, or add examples of the other classes.",
        )
    return LabelSet(ordered, is_multi)


def drop_unknown_labels(examples: list[Example], labels: LabelSet, channel: str) -> list[Example]:
    """Evaluation rows whose label was never seen in training cannot be scored; they are counted and dropped."""
    known = set(labels.names)
    kept = [e for e in examples if all(n in known for n in (e.label if isinstance(e.label, list) else [e.label]))]
    if len(kept) < len(examples):
        log.warning(
            "Channel '%s': %d rows have labels not seen in training; skipped.", channel, len(examples) - len(kept)
        )
    return kept


def split_validation(examples: list[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out `share` of the training rows (at least one, at most all but one), the same rows for a given seed."""
    if share <= 0:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = min(max(1, round(len(examples) * share)), len(examples) - 1)
    held_out = set(order[:held])
    train = [e for i, e in enumerate(examples) if i not in held_out]
    validation = [e for i, e in enumerate(examples) if i in held_out]
    return train, validation
