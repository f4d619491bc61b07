"""One `prepare` run: read the inputs, drop duplicates, split (or check the given split), write channels and report."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .dedup import DedupResult, deduplicate
from .inputs import REPORT_OUTPUT, SPLITS, Columns, Locations, Row, read_inputs
from .lengths import load_tokenizer_from, model_limit, summarise, token_lengths
from .report import DUPLICATES_FILE, label_counts, write_duplicates, write_report
from .split import split_rows

log = logging.getLogger("textclf.prepare")

CROSS_SPLIT_ACTIONS = ("warn", "drop", "fail")


@dataclass(frozen=True)
class Options:
    columns: Columns
    validation_share: float = 0.1
    test_share: float = 0.1
    seed: int = 42
    min_per_label: int = 3
    rare_labels: str = "fail"
    cross_split_duplicates: str = "warn"
    coverage: float = 0.95


def _given_splits(dedup: DedupResult, action: str) -> tuple[dict[str, list[Row]], int]:
    """The inputs' own split, less (by option) the rows already in an earlier split."""
    if dedup.cross and action == "fail":
        first = dedup.cross[0]
        raise UserError(
            f"{len(dedup.cross)} row(s) of a later split repeat a text of an earlier one, e.g. {first.row.source} "
            f"({first.row.split}) repeats {first.first.source} ({first.first.split}).",
            "Remove them from the data, or pass --cross-split-duplicates drop to remove them from the later split.",
        )
    leaked = {id(d.row) for d in dedup.cross} if action == "drop" else set()
    splits = {name: [r for r in dedup.kept if r.split == name and id(r) not in leaked] for name in SPLITS}
    return splits, len(leaked)


def run(locations: Locations, options: Options) -> dict:
    data, presplit = read_inputs(locations, options.columns)
    dedup = deduplicate(data.rows)
    report: dict = {
        "mode": "checked the given split" if presplit else "split",
        "inputs": {name: str(path) for name, path in locations.inputs.items()},
        "files": data.files,
        "ignored_files": data.ignored_files,
        "rows_read": sum(data.files.values()),
        "rows_dropped": dict(sorted(data.dropped.items())),
        "duplicates": {**dedup.counts(dedup.within), "removed": len(dedup.within)},
    }
    if presplit:
        splits, removed = _given_splits(dedup, options.cross_split_duplicates)
        pairs: dict[str, int] = {}
        for d in dedup.cross:
            pairs[f"{d.first.split}/{d.row.split}"] = pairs.get(f"{d.first.split}/{d.row.split}", 0) + 1
        report["cross_split_duplicates"] = {
            **dedup.counts(dedup.cross),
            "between": dict(sorted(pairs.items())),
            "action": options.cross_split_duplicates,
            "removed": removed,
        }
        if dedup.cross:
            log.warning("%d rows repeat a text of an earlier split (%s); %s.", len(dedup.cross), pairs,
                        "removed from the later split" if removed else "kept: see duplicates.jsonl")  # fmt: skip
    else:
        result = split_rows(
            dedup.kept,
            options.validation_share,
            options.test_share,
            options.seed,
            options.min_per_label,
            options.rare_labels,
        )
        splits = result.splits
        report["split"] = {
            "seed": options.seed,
            "validation_share": options.validation_share,
            "test_share": options.test_share,
        }
        report["rare_labels"] = {"labels": result.rare, "action": options.rare_labels, "removed": result.rare_dropped}
        if result.rare:
            log.warning("Labels too rare to split (%s): %s.", options.rare_labels, result.rare)
    report["splits"] = {
        name: {"rows": len(rows), "labels": label_counts(rows)} for name, rows in splits.items() if rows
    }
    written = [row for rows in splits.values() for row in rows]
    lengths = _measure(locations.model_dir, written, options.coverage, report)
    report["train_hyperparameters"] = _hyperparameters(options.columns, report)
    _write_channels(locations, splits, options.columns)
    report_dir = locations.outputs[REPORT_OUTPUT]
    report_dir.mkdir(parents=True, exist_ok=True)
    write_duplicates(report_dir / DUPLICATES_FILE, [d.describe() for d in dedup.within + dedup.cross])
    write_report(report_dir, report, splits, lengths)
    return report


def _measure(model_dir: Path | None, rows: list[Row], coverage: float, report: dict) -> list[int] | None:
    if model_dir is None:
        report["token_lengths"] = None
        log.warning("No model input and no --tokenizer-dir: token lengths and max_length are not reported.")
        return None
    tokenizer = load_tokenizer_from(model_dir)
    lengths = token_lengths(tokenizer, rows)
    summary = summarise(lengths, coverage, model_limit(tokenizer))
    report["token_lengths"] = {"tokenizer": str(model_dir), **summary}
    return lengths


def _hyperparameters(columns: Columns, report: dict) -> dict[str, str]:
    """What `train` needs to read these channels as written (and the max_length the lengths suggest)."""
    chosen = {"text_column": columns.text, "label_column": columns.label}
    if columns.text_pair:
        chosen["text_pair_column"] = columns.text_pair
    if report.get("token_lengths"):
        chosen["max_length"] = str(report["token_lengths"]["recommended_max_length"])
    return chosen


def _write_channels(locations: Locations, splits: dict[str, list[Row]], columns: Columns) -> None:
    for name, rows in splits.items():
        if not rows:
            continue
        directory = locations.outputs[name]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.jsonl"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row.record(columns), ensure_ascii=False) + "\n")
        tmp.replace(path)
        log.info("Wrote %d rows to %s", len(rows), path)
