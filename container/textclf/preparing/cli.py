"""`prepare`: turn raw labelled text into leak-free train / validation / test channels, as a SageMaker Processing job.

Reads every input under /opt/ml/processing/input (the `model` input apart: its tokenizer measures text lengths),
writes train/, validation/ and test/ (JSON Lines that `train` reads as they are) and report/ under
/opt/ml/processing/output. `prepare score` scores files with a trained model instead (`prepare score --help`).
Exit codes: 0 done; 1 failed, with the reason in /opt/ml/output/message.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from ..contract import FAILURE_MESSAGE_LIMIT, ProcessingPaths, log_level, processing_paths, read_processing_job
from ..errors import UserError
from . import scoring
from .inputs import Columns, add_input_argument, locate
from .job import CROSS_SPLIT_ACTIONS, Options, run
from .split import RARE_ACTIONS

log = logging.getLogger("textclf.prepare")

EXIT_FAILED = 1


class _Parser(argparse.ArgumentParser):
    """Bad flags are a UserError like any other bad input, so the reason also reaches the message file."""

    def error(self, message: str):
        raise UserError(f"prepare: {message}.", "Run `prepare --help` for the flags and their values.")


def _share(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{raw} is not a share between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_argument_group("where (defaults: the processing job's inputs and outputs)")
    add_input_argument(where)
    where.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="write train/, validation/, test/ and report/ here (default: /opt/ml/processing/output, "
        "or the job's outputs of those names)",
    )
    where.add_argument(
        "--tokenizer-dir",
        "--tokenizer_dir",
        type=Path,
        metavar="DIR",
        help="a model directory whose tokenizer measures lengths (default: the `model` input)",
    )
    columns = parser.add_argument_group("columns (the names train's hyperparameters use)")
    columns.add_argument("--text-column", "--text_column", default="text", help="default: text")
    columns.add_argument("--label-column", "--label_column", default="label", help="default: label")
    columns.add_argument("--text-pair-column", "--text_pair_column", help="a second text, for sentence pairs")
    split = parser.add_argument_group("splitting")
    split.add_argument("--validation-share", "--validation_share", type=_share, default=0.1, help="default: 0.1")
    split.add_argument("--test-share", "--test_share", type=_share, default=0.1, help="default: 0.1")
    split.add_argument("--seed", type=int, default=42, help="default: 42")
    split.add_argument(
        "--min-per-label",
        "--min_per_label",
        type=int,
        default=3,
        help="a label with fewer rows is too rare to split (default: 3, never below the number of splits)",
    )
    split.add_argument(
        "--rare-labels",
        "--rare_labels",
        choices=RARE_ACTIONS,
        default="fail",
        help="too-rare labels: fail (default), keep them in train only, or drop them",
    )
    split.add_argument(
        "--cross-split-duplicates",
        "--cross_split_duplicates",
        choices=CROSS_SPLIT_ACTIONS,
        default="warn",
        help="inputs already split: a text of a later split found in an earlier one "
        "is reported (warn, default), removed from the later split (drop), or fails the job",
    )
    split.add_argument(
        "--coverage",
        type=_share,
        default=0.95,
        help="recommend the max_length that keeps this share of texts whole (default: 0.95)",
    )
    return parser


def write_message(paths: ProcessingPaths, message: str) -> None:
    try:
        paths.message_file.parent.mkdir(parents=True, exist_ok=True)
        paths.message_file.write_text(message.strip()[:FAILURE_MESSAGE_LIMIT] + "\n", encoding="utf-8")
    except OSError:
        log.exception("Could not write %s", paths.message_file)


def build_score_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prepare score", description=scoring.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    scoring.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=log_level(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paths = processing_paths()
    paths.message_file.unlink(missing_ok=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["score"]:
            args = build_score_parser().parse_args(argv[1:])
            result = scoring.run(paths, _single_host_job(paths, "scores on one instance only"), args)
            print(f"Scored {result['rows']} rows of {len(result['files'])} file(s) into {result['output']}.")
            return 0
        args = build_parser().parse_args(argv)
        job = _single_host_job(paths, "must see all rows on one instance to find duplicates")
        locations = locate(paths, job, args.input, args.output, args.tokenizer_dir)
        options = Options(
            Columns(args.text_column, args.label_column, args.text_pair_column),
            args.validation_share,
            args.test_share,
            args.seed,
            args.min_per_label,
            args.rare_labels,
            args.cross_split_duplicates,
            args.coverage,
        )
        report = run(locations, options)
    except UserError as exc:
        log.error("%s %s", exc.cause, exc.remedy)
        write_message(paths, f"{exc.cause} {exc.remedy}")
        return EXIT_FAILED
    except Exception as exc:
        traceback.print_exc()
        write_message(
            paths,
            f"Internal error: {type(exc).__name__}: {exc}"[: FAILURE_MESSAGE_LIMIT - 150]
            + " This is likely a bug in the container; the traceback is in the job's logs.",
        )
        return EXIT_FAILED
    print(_summary(report), flush=True)
    return 0


def _single_host_job(paths: ProcessingPaths, why: str):
    job = read_processing_job(paths)
    if job is not None and len(job.hosts) > 1:
        raise UserError(
            f"This processing job runs on {len(job.hosts)} instances; prepare {why}.",
            "Set the processing job's InstanceCount to 1.",
        )
    return job


def _summary(report: dict) -> str:
    splits = ", ".join(f"{name} {info['rows']}" for name, info in report["splits"].items())
    duplicates = report["duplicates"]
    line = (
        f"Prepared {splits} rows from {report['rows_read']} read; dropped {sum(report['rows_dropped'].values())} "
        f"without text or label and {duplicates['removed']} duplicates ({duplicates['exact']} exact, "
        f"{duplicates['normalised']} after normalising)."
    )
    if "cross_split_duplicates" in report:
        cross = report["cross_split_duplicates"]
        line += f" Cross-split duplicates: {cross['exact'] + cross['normalised']} ({cross['removed']} removed)."
    if report.get("token_lengths"):
        line += f" Recommended max_length: {report['token_lengths']['recommended_max_length']}."
    return line
