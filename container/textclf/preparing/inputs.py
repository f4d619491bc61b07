"""Where `prepare` reads and writes, and the rows it reads, each with the file and line it came from.

Files are parsed by the training readers (textclf.training.data): the same formats, gzip, column checks and rules
for skipping a row without text or label, so that what `prepare` accepts, `train` accepts too.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..contract import ProcessingJob, ProcessingPaths
from ..errors import UserError
from ..training.data import ChannelData, Label, LabelKinds, iter_examples
from ..training.readers import data_files

log = logging.getLogger(__name__)

MODEL_INPUT = "model"  # the input holding a model directory (its tokenizer measures text lengths)
SPLITS = ("train", "validation", "test")  # in this order: a duplicate counts against the later split
REPORT_OUTPUT = "report"
# Formats people export that this image does not parse; named in messages so the remedy is concrete.
UNREAD_SUFFIXES = (".parquet", ".pq", ".xlsx", ".xls", ".avro", ".orc", ".feather", ".arrow")


@dataclass(frozen=True)
class Columns:
    text: str = "text"
    label: str = "label"
    text_pair: str | None = None


@dataclass
class Row:
    text: str
    label: Label
    text_pair: str | None
    source: str  # "file:line", relative to the input
    split: str | None = None  # the split an input came as (train/validation/test), else None

    def record(self, columns: Columns) -> dict:
        """The row as `train` reads it, under the same column names."""
        out: dict = {columns.text: self.text}
        if columns.text_pair:
            out[columns.text_pair] = self.text_pair
        out[columns.label] = self.label
        return out


@dataclass
class InputData:
    rows: list[Row] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # file (relative to the input root) -> rows read
    ignored_files: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)  # reason -> rows without text or label


@dataclass(frozen=True)
class Locations:
    inputs: dict[str, Path]  # input name -> directory
    outputs: dict[str, Path]  # train, validation, test, report -> directory
    model_dir: Path | None


def add_input_argument(parser) -> None:
    """--input, which prepare and prepare score share (`parser`: a parser or an argument group)."""
    parser.add_argument(
        "--input",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="an input directory; repeat for several (default: each input but `model`)",
    )


def locate(
    paths: ProcessingPaths, job: ProcessingJob | None, inputs: list[Path], output: Path | None, model: Path | None
) -> Locations:
    """Inputs: the flags, else the job's inputs, else the directories under processing/input; `model` apart."""
    if inputs:
        found = {path.name: path for path in inputs}
    elif job is not None and job.inputs:
        found = dict(job.inputs)
    elif paths.input_dir.is_dir():
        found = {p.name: p for p in sorted(paths.input_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    else:
        found = {}
    model_name = _model_input_name(found, paths)
    model_dir = model or found.get(model_name)
    found.pop(model_name, None)
    for name, path in found.items():
        if not path.is_dir():
            raise UserError(
                f"Input '{name}' ({path}) is not a directory.",
                "Give each input as a directory of .csv, .tsv, .jsonl or .json files (the job's LocalPath).",
            )
    if not found:
        raise UserError(
            f"No input data: nothing under {paths.input_dir} and no --input given.",
            f"Add a processing input with LocalPath {paths.input_dir}/<name> holding your labelled files.",
        )
    root = output or paths.output_dir
    outputs = {name: root / name for name in (*SPLITS, REPORT_OUTPUT)}
    if output is None and job is not None:
        outputs.update({name: path for name, path in job.outputs.items() if name in outputs})
    return Locations(found, outputs, model_dir)


def _model_input_name(found: dict[str, Path], paths: ProcessingPaths) -> str:
    """The input named `model`, or the one mounted at processing/input/model: the SageMaker Python SDK names the
    inputs a user left unnamed input-1, input-2, ..., so the documented path must be enough."""
    for name, path in found.items():
        if path == paths.input_dir / MODEL_INPUT:
            return name
    return MODEL_INPUT


def read_input(name: str, directory: Path, columns: Columns, split: str | None, into: InputData) -> None:
    """Every row of every data file under `directory`, appended to `into`; rows without text or label counted."""
    files = data_files(directory)
    every = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in every:
        if path not in files:
            into.ignored_files.append(f"{name}/{path.relative_to(directory)}")
    if not files:
        unread = [p.name for p in every if p.name.lower().removesuffix(".gz").endswith(UNREAD_SUFFIXES)]
        raise UserError(
            f"Input '{name}' has no .csv, .tsv, .jsonl or .json files"
            + (f"; {', '.join(unread[:5])} cannot be read by this image." if unread else f" (in {directory})."),
            "Export the data as CSV or JSON Lines (optionally gzipped); Parquet and spreadsheets are not read.",
        )
    kinds = LabelKinds()
    for path in files:
        relative = f"{name}/{path.relative_to(directory)}"
        data = ChannelData(skipped=into.dropped)  # train's row rules; prepare keeps whole texts (no cut)
        skipped_before, count = sum(into.dropped.values()), 0
        for line, example in iter_examples(
            path, columns.text, columns.label, columns.text_pair, sys.maxsize, data, kinds
        ):
            count += 1
            into.rows.append(Row(example.text, example.label, example.text_pair, f"{relative}:{line}", split))
        into.files[relative] = count + sum(into.dropped.values()) - skipped_before
    kinds.check(name)
    if into.ignored_files:
        log.warning("Ignored files that are not data: %s", ", ".join(into.ignored_files[:10]))


def read_inputs(locations: Locations, columns: Columns) -> tuple[InputData, bool]:
    """All rows, and whether the inputs came already split (inputs named train and validation and/or test)."""
    names = set(locations.inputs)
    presplit = bool(names & {"validation", "test"})
    if presplit:
        extra = sorted(names - set(SPLITS))
        if "train" not in names or extra:
            raise UserError(
                "Inputs named validation or test mean the data comes already split, but "
                + ("there is no 'train' input." if "train" not in names else f"there are other inputs too: {extra}."),
                "Name the inputs exactly train, validation and test (and model), or give unsplit data under other "
                "names to have it split.",
            )
    data = InputData()
    order = sorted(locations.inputs, key=lambda n: (SPLITS.index(n) if n in SPLITS else len(SPLITS), n))
    for name in order:
        read_input(name, locations.inputs[name], columns, name if presplit else None, data)
    if not data.rows:
        raise UserError(
            f"No usable rows in {len(data.files)} file(s): "
            + (", ".join(f"{n} {reason}" for reason, n in sorted(data.dropped.items())) or "they are empty")
            + ".",
            f"Each row needs a non-empty '{columns.text}' and a '{columns.label}' (see --text-column, --label-column).",
        )
    return data, presplit
