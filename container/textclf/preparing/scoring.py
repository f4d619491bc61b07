"""`prepare score`: offline batch scoring as a SageMaker Processing job.

Scores every data file of the inputs under /opt/ml/processing/input with the model in the `model` input (a
directory written by `train`, or its model.tar.gz), and writes, per input file, a JSON Lines file under
/opt/ml/processing/output/predictions/ holding each input row with its prediction beside it. The model is run by
the serving code (its predictor, batching and answer format), so a row scores here exactly as the endpoint would
score it. Exit codes: 0 done; 1 failed, with the reason in /opt/ml/output/message.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..contract import Channel, ProcessingPaths
from ..errors import UserError
from ..serving.inputs import DecodedRequest, Parameters, TextInput
from ..training.readers import data_files, iter_records
from .inputs import MODEL_INPUT, add_input_argument, locate

log = logging.getLogger("textclf.score")

PREDICTIONS_OUTPUT = "predictions"
CHUNK = 2048  # rows read, scored and written at a time: memory stays flat whatever the file's size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_argument(parser)
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="write predictions/ here (default: /opt/ml/processing/output, or the job's output named predictions)",
    )
    parser.add_argument(
        "--model-dir",
        "--model_dir",
        type=Path,
        metavar="DIR",
        help="the model to score with (default: the `model` input)",
    )
    parser.add_argument("--text-column", "--text_column", default="text", help="default: text")
    parser.add_argument("--text-pair-column", "--text_pair_column", help="the second text, for a pair model")


def _load(model_input: Path):
    """The serving side's Inference over a DirectRunner: the predictor, batching and answers `serve` uses."""
    from ..serving.batcher import DirectRunner
    from ..serving.inference import Inference
    from ..serving.modelinfo import describe_model
    from ..serving.predictor import Predictor
    from ..serving.settings import load_settings
    from ..training.base_model import resolve_source

    info = describe_model(Path(resolve_source(Channel(MODEL_INPUT, model_input), None)))
    settings = load_settings()
    predictor = Predictor(info, settings)
    runner = DirectRunner(predictor.logits, settings.max_batch_size, settings.max_batch_tokens)
    return Inference(predictor, runner, timeout_s=None), info  # offline: no request time limit


def run(paths: ProcessingPaths, job, args: argparse.Namespace) -> dict:
    locations = locate(paths, job, args.input, args.output, args.model_dir)
    if locations.model_dir is None:
        raise UserError(
            "No model to score with: no `model` input and no --model-dir.",
            "Add a processing input named model holding the output of a training job (model.tar.gz).",
        )
    root = args.output or paths.output_dir
    out_dir = (job.outputs.get(PREDICTIONS_OUTPUT) if job and not args.output else None) or root / PREDICTIONS_OUTPUT
    inference, info = _load(locations.model_dir)
    if info.text_pair and not args.text_pair_column:
        raise UserError(
            "The model was trained on text pairs, but no --text-pair-column names the second text.",
            "Pass --text-pair-column with the column holding it.",
        )
    counts: dict[str, int] = {}
    for name, directory in locations.inputs.items():
        files = data_files(directory)
        if not files:
            raise UserError(f"Input '{name}' has no .csv, .tsv, .jsonl or .json files.", "Add the texts to score.")
        for path in files:
            relative = path.relative_to(directory)
            target = out_dir / name / relative.parent / (relative.name.removesuffix(".gz").rsplit(".", 1)[0] + ".jsonl")
            counts[f"{name}/{relative}"] = _score_file(inference, path, target, args)
    return {"files": counts, "rows": sum(counts.values()), "output": str(out_dir)}


def _score_file(inference, path: Path, target: Path, args: argparse.Namespace) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "w", encoding="utf-8") as out:
        chunk: list[dict] = []
        for _, record in iter_records(path):
            chunk.append(record if isinstance(record, dict) else {"value": record})
            if len(chunk) == CHUNK:
                written += _score_chunk(inference, chunk, out, args)
                chunk = []
        written += _score_chunk(inference, chunk, out, args)
    log.info("Scored %d rows of %s into %s", written, path, target)
    return written


def _score_chunk(inference, records: list[dict], out, args: argparse.Namespace) -> int:
    inputs, positions = [], []
    for index, record in enumerate(records):
        text = str(record.get(args.text_column) or "").strip()
        pair = str(record.get(args.text_pair_column) or "").strip() if args.text_pair_column else None
        if text and (pair is None or pair):
            inputs.append(TextInput(text, pair))
            positions.append(index)
    answers: dict[int, object] = {}
    if inputs:
        results, _ = inference.classify(DecodedRequest(inputs, [Parameters()] * len(inputs)))
        answers = dict(zip(positions, results, strict=True))
    for index, record in enumerate(records):
        if index in answers:
            row = {**record, "prediction": answers[index]}
        else:  # kept, so the output has every input row; it says why it has no prediction
            row = {**record, "prediction": None, "error": f"empty '{args.text_column}' (or text pair)"}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(records)
