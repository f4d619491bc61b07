"""A channel's files as labelled examples, and the label set learnt from them.

A channel holds any number of `.csv`, `.tsv`, `.jsonl` or `.json` (JSON Lines, or one JSON array) files, each
optionally gzipped, possibly nested (readers.py reads them). Rows with an empty text or no label are skipped and
counted, never fatal; texts longer than the model can use are cut, and counted.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..windows import TRUNCATE, LongTextPolicy
from .readers import data_files, iter_records

log = logging.getLogger(__name__)

Label = str | list[str]
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")

# Characters kept of a text (and of its pair) per token of max_length. Tokens rarely span more than 20 characters,
# and BERT's WordPiece makes any word over 100 characters one unknown token, so a cut text still tokenises to the
# same first max_length tokens. The one rule that bounds what is kept; the long-text policy says how many tokens
# are read (chunks read several windows; head_tail keeps as many characters of the text's end as well).
CHARS_PER_TOKEN_BOUND = 100


def text_char_limit(max_length: int, policy: LongTextPolicy = TRUNCATE) -> int:
    return policy.tokens_read(max_length) * CHARS_PER_TOKEN_BOUND


@dataclass
class Example:
    text: str
    label: Label
    text_pair: str | None = None


@dataclass
class ChannelData:
    examples: list[Example] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    cut: int = 0  # texts (or text pairs) longer than the character limit, kept only up to it


class LabelKinds:
    """The JSON kinds a channel's labels came as (number, string, boolean), with where each was first seen.

    CSV labels are always strings and JSON labels may be numbers, so 1 and "1" name the same label; mixing them
    is allowed and logged. Booleans name labels "true" and "false", but only when every label is one.
    """

    def __init__(self) -> None:
        self.first_seen: dict[str, str] = {}
        self.names: dict[str, set[str]] = {}

    def note(self, kind: str, name: str, where: str) -> None:
        self.first_seen.setdefault(kind, where)
        self.names.setdefault(kind, set()).add(name)

    def check(self, channel: str) -> None:
        if "boolean" in self.first_seen and len(self.first_seen) > 1:
            other = next(kind for kind in self.first_seen if kind != "boolean")
            raise UserError(
                f"Channel '{channel}' mixes true/false labels ({self.first_seen['boolean']}) with {other} labels "
                f"({self.first_seen[other]}).",
                "Write every label the same way: all true/false, or all class names (strings or whole numbers).",
            )
        if "boolean" in self.first_seen:
            log.info("Channel '%s': the labels are true/false; they are named 'true' and 'false'.", channel)
        merged = sorted(self.names.get("number", set()) & self.names.get("string", set()), key=_label_order)
        if merged:
            log.warning(
                "Channel '%s': the labels %s appear both as JSON numbers (first at %s) and as strings (first at %s); "
                "a number and its spelling are one label.",
                channel,
                ", ".join(merged[:10]) + (", ..." if len(merged) > 10 else ""),
                self.first_seen["number"],
                self.first_seen["string"],
            )


def read_channel(
    directory: Path,
    text_column: str,
    label_column: str,
    text_pair_column: str | None,
    max_length: int,
    policy: LongTextPolicy = TRUNCATE,
) -> ChannelData:
    files = data_files(directory)
    if not files:
        present = sorted(p.name for p in directory.rglob("*") if p.is_file())[:10]
        raise UserError(
            f"Channel '{directory.name}' has no data files"
            + (f" (found: {', '.join(present)})." if present else " (the directory is empty)."),
            "Add .csv, .tsv, .jsonl or .json files (optionally .gz) to the channel's S3 prefix.",
        )
    data, kinds, limit = ChannelData(), LabelKinds(), text_char_limit(max_length, policy)
    for path in files:
        columns = (text_column, label_column, text_pair_column)
        rows = iter_examples(path, *columns, limit, data, kinds, keep_tail=policy.keeps_tail)
        data.examples.extend(example for _, example in rows)
    kinds.check(directory.name)
    if data.skipped:
        details = ", ".join(f"{count} with {reason}" for reason, count in sorted(data.skipped.items()))
        log.warning("Channel '%s': skipped %d rows (%s).", directory.name, sum(data.skipped.values()), details)
    if data.cut:
        log.warning(
            "Channel '%s': cut %d text(s) longer than %d characters to that length%s (max_length %d tokens with "
            "long_text=%s never needs more).",
            directory.name,
            data.cut,
            limit,
            ", keeping as many of their last characters" if policy.keeps_tail else "",
            max_length,
            policy.name,
        )
    if not data.examples:
        raise UserError(
            f"Channel '{directory.name}' has no usable rows in {len(files)} file(s)"
            + (f"; all were skipped ({dict(data.skipped)})." if data.skipped else "."),
            f"Each row needs a non-empty '{text_column}' and a '{label_column}'.",
        )
    return data


def iter_examples(
    path: Path,
    text_column: str,
    label_column: str,
    text_pair_column: str | None,
    limit: int,
    data: ChannelData,
    kinds: LabelKinds,
    keep_tail: bool = False,
) -> Iterator[tuple[int, Example]]:
    """(line, example) for each usable row of one file, texts cut at `limit` characters (with `keep_tail`, also
    their last `limit` characters); rows without a text or a label are counted in `data.skipped`, label kinds noted
    in `kinds`. The rules `train` and `prepare` share."""
    for index, (line, record) in enumerate(iter_records(path)):
        if not isinstance(record, dict):
            raise UserError(
                f"{path.name} line {line} is a JSON {type(record).__name__}, not an object.",
                f'Write one object per line, like {{"{text_column}": "...", "{label_column}": "..."}}.',
            )
        if index == 0:  # columns are checked on each file's first row; later gaps count as bad rows
            _check_columns(path, record, text_column, label_column, text_pair_column)
        label = _coerce_label(record.get(label_column), f"{path.name} line {line}", kinds)
        example = _example(record, text_column, text_pair_column, label, limit, data, keep_tail)
        if example is not None:
            yield line, example


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


def _kept_text(value: object, limit: int, data: ChannelData, keep_tail: bool = False) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) > (2 * limit if keep_tail else limit):
        data.cut += 1
        # The middle goes: each kept end still tokenises to the same first (last) max_length tokens.
        return text[:limit] + " " + text[-limit:] if keep_tail else text[:limit]
    return text


def _example(
    record: dict,
    text_column: str,
    pair_column: str | None,
    label: Label | None,
    limit: int,
    data: ChannelData,
    keep_tail: bool = False,
) -> Example | None:
    text = _kept_text(record.get(text_column), limit, data, keep_tail)
    if not text:
        data.skipped["empty text"] += 1
        return None
    pair = None
    if pair_column:
        pair = _kept_text(record.get(pair_column), limit, data)
        if not pair:
            data.skipped["empty text pair"] += 1
            return None
    if label is None or label == []:
        data.skipped["missing label"] += 1
        return None
    return Example(text, label, pair)


def _coerce_label(value: object, where: str, kinds: LabelKinds) -> Label | None:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):  # a list written into a CSV cell
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                pass
    if isinstance(value, list):
        return [name for name in (_label_name(v, where, kinds) for v in value if v is not None) if name]
    return None if value is None else _label_name(value, where, kinds)


def _label_name(value: object, where: str, kinds: LabelKinds) -> str | None:
    """A label's name: a string as written, a whole number in decimal, a boolean as true/false."""
    if isinstance(value, bool):
        kind, name = "boolean", "true" if value else "false"
    elif isinstance(value, int) or isinstance(value, float) and value.is_integer():
        kind, name = "number", str(int(value))
    elif isinstance(value, str):
        kind, name = "string", value.strip()
    elif isinstance(value, float):
        raise UserError(
            f"{where} has the label {value!r}, a number with a fraction; labels name classes.",
            'Write class names or whole numbers (a class named 1.5 as the string "1.5"), and check that '
            "label_column is the column of classes, not of scores.",
        )
    else:
        raise UserError(
            f"{where} has a label that is a JSON {type(value).__name__}; a label is a string, a whole number, "
            "or a list of those (multi-label).",
            "Write each label as a class name, or check label_column.",
        )
    if name:
        kinds.note(kind, name, where)
    return name or None


def _label_order(name: str) -> tuple:
    """Whole numbers as numbers ("2" before "10"), then names alphabetically."""
    return (0, int(name), "") if _WHOLE_NUMBER.fullmatch(name) else (1, 0, name)


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
    ordered = sorted(names, key=_label_order)
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
