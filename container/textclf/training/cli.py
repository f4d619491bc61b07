"""`train`: read the job's inputs, fine-tune, and leave a deployable model, or a failure file saying why not.

Exit codes: 0 completed; 1 failed (see /opt/ml/output/failure); 143 stopped by SIGTERM after checkpointing.
A job that names its own program (script mode: sagemaker_program, SAGEMAKER_PROGRAM) runs it instead (script_mode.py).
With several GPUs or hosts, `train` is the launcher of its host and runs again as each worker (launcher.py).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import traceback

from ..contract import (
    FAILURE_MESSAGE_LIMIT,
    MLPaths,
    log_level,
    ml_paths,
    read_channels,
    read_hyperparameters,
    read_resource_config,
    user_program,
)
from ..environment import describe as describe_environment
from ..environment import read as read_environment
from ..errors import UserError
from . import faults, hyperparameters, launcher, script_mode
from .launcher import DistributedSettings

log = logging.getLogger("textclf.train")

EXIT_FAILED = 1
EXIT_STOPPED = 128 + signal.SIGTERM  # SageMaker sends SIGKILL 120 s after SIGTERM; we are long gone by then
# The SageMaker SDKs give a single unnamed input (`estimator.fit("s3://...")`) this channel name; it means `train`.
SDK_SINGLE_CHANNEL = "training"


def emit(line: str) -> None:
    """Metric and progress lines go to stdout, one per line, flushed at once for SageMaker's log scraper."""
    print(line, flush=True)


def write_failure(paths: MLPaths, message: str, kind: str = launcher.FAILED) -> None:
    """The host's failure file; a worker tells its launcher instead, which writes the one file of its host."""
    if launcher.is_worker():
        launcher.report_outcome(kind, message.strip())
        return
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(message.strip() + "\n", encoding="utf-8")
    except OSError:
        log.exception("Could not write %s", paths.failure_file)


def _report_stop(paths: MLPaths, message: str) -> int:
    """A stopped job is not a completed one: say where things stand in the failure file and on stdout."""
    write_failure(paths, message, launcher.STOPPED)
    emit(message)
    return EXIT_STOPPED


def _describe_unexpected(exc: BaseException) -> str:
    import torch

    if faults.is_disk_full(exc):  # a write that no caller named (logs, reports); those that matter say where
        where = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""
        return f"The volume is full{where} ({type(exc).__name__}: {str(exc)[:200]}). {faults.VOLUME_REMEDY}"

    if isinstance(exc, torch.OutOfMemoryError):
        return (
            "Out of memory on the GPU while training. Lower per_device_batch_size (and raise "
            "gradient_accumulation_steps to keep the effective batch) or max_length, or use a larger instance."
        )
    if isinstance(exc, MemoryError):
        return "Out of host memory. Use an instance with more memory, or lower per_device_batch_size or max_length."
    return (
        f"Internal error: {type(exc).__name__}: {exc}"[: FAILURE_MESSAGE_LIMIT - 200]
        + " This is likely a bug in the training container; the traceback is in the job's logs (stderr)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="train",
        description=__doc__.splitlines()[0],
        epilog=_hyperparameter_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    logging.basicConfig(level=log_level(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paths = ml_paths()
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.warning(
            "%s received: saving a checkpoint and the best model so far, then stopping.", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    paths.failure_file.unlink(missing_ok=True)
    try:
        program = user_program(paths)
        if program:  # the job brings its own training script (script mode)
            return script_mode.run(paths, program, write_failure)
        return run(paths, stop)
    except UserError as exc:
        log.error("%s %s", exc.cause, exc.remedy)
        write_failure(paths, f"{exc.cause} {exc.remedy}")
        return EXIT_FAILED
    except Exception as exc:
        traceback.print_exc()
        if launcher.is_worker() and _is_lost_peer(exc):
            write_failure(paths, _describe_lost_peer(exc), launcher.LOST_PEER)
        else:
            write_failure(paths, _describe_unexpected(exc))
        return EXIT_FAILED
    finally:
        if launcher.is_worker():
            from .distributed import stop_world

            stop_world()


def _is_lost_peer(exc: BaseException) -> bool:
    from .distributed import is_lost_peer

    return is_lost_peer(exc)


def _describe_lost_peer(exc: BaseException) -> str:
    return (
        f"Lost contact with the job's other workers ({type(exc).__name__}: {str(exc)[:300]}). Another worker or "
        "host of this job failed or was stopped first: the failure file and log of the host where it happened say "
        "why (if that host was lost itself, see the instance's health in the job's logs)."
    )


def _hyperparameter_help() -> str:
    rows = hyperparameters.describe()
    variables = describe_environment(DistributedSettings)
    width = max(len(name) for name, _, _ in rows + variables)
    return (
        "hyperparameters (input/config/hyperparameters.json):\n"
        + "\n".join(f"  {name:<{width}}  {meaning} [default: {default}]" for name, default, meaning in rows)
        + "\n\nenvironment (multi-GPU and multi-host training):\n"
        + "\n".join(f"  {name:<{width}}  {meaning} [default: {default}]" for name, default, meaning in variables)
    )


def _silent(_line: str) -> None:
    """Metric lines come from global rank 0 alone: SageMaker would count every other rank's lines again."""


def _stopped_elsewhere(result) -> str:
    return (
        f"Stopped by SIGTERM at step {result.step} of {result.total_steps}; the first host holds the checkpoint "
        "and the model. A job started with the same checkpoint location resumes from it."
    )


def run(paths: MLPaths, stop: threading.Event) -> int:
    started = time.monotonic()
    params = hyperparameters.parse(read_hyperparameters(paths))
    resources = read_resource_config(paths)
    settings = read_environment(DistributedSettings)
    channels = read_channels(paths)
    if "train" not in channels and SDK_SINGLE_CHANNEL in channels:
        log.info("Training on the `%s` channel (a single input the SDK named for us).", SDK_SINGLE_CHANNEL)
        channels["train"] = channels[SDK_SINGLE_CHANNEL]
    if "train" not in channels:
        raise UserError(
            "No `train` channel: the job's input has " + (", ".join(sorted(channels)) or "no channels") + ".",
            "Add an input channel named `train` holding .csv or .jsonl files of texts and labels "
            "(or pass a single input, which the SageMaker SDKs name `training`).",
        )
    # Heavy imports after the cheap checks, so a mistyped hyperparameter fails in a second.
    import torch
    from transformers.utils import logging as transformers_logging

    from . import distributed
    from .session import TrainingSession

    transformers_logging.disable_progress_bar()  # progress bars are noise in CloudWatch; we print our own lines

    world = distributed.World()
    if launcher.is_worker():
        world = distributed.start_world(settings, resources.current_host)
        if world.local_rank > 0:
            logging.getLogger().setLevel(logging.WARNING)  # each host's first worker tells its story
    else:
        plan = launcher.plan_launch(resources, settings, torch.cuda.device_count())
        launcher.refuse_sharded_channels(plan, channels)
        if plan.distributed:
            code, message = launcher.launch(paths, plan, settings)
            if message:
                write_failure(paths, message)
                emit(message)
            return code
    session = TrainingSession(paths, params, channels, stop, emit if world.is_main else _silent, world)
    result = session.train()
    if result.stopped and result.step == 0:
        return _report_stop(paths, "Stopped by SIGTERM before the first training step; there was nothing to save yet.")
    summary = session.summarise(result, time.monotonic() - started)
    session.write_model(result, summary)
    if not world.is_main:
        stopped = result.stopped or summary.get("final_evaluation_interrupted")
        return _report_stop(paths, _stopped_elsewhere(result)) if stopped else 0
    if result.stopped:
        return _report_stop(
            paths,
            f"Stopped by SIGTERM at step {result.step} of {result.total_steps}; a checkpoint is in "
            f"{paths.checkpoints_dir} and the best model so far in {paths.model_dir}. "
            "A job started with the same checkpoint location resumes from it.",
        )
    if summary.get("final_evaluation_interrupted"):
        return _report_stop(
            paths,
            f"Stopped by SIGTERM during the final evaluation, after all {result.step} training steps; the trained "
            f"model is in {paths.model_dir}, without its final validation and test scores. A job started with the "
            "same checkpoint location trains nothing and only evaluates again.",
        )
    emit(f"Training complete in {summary['train_seconds']:.1f} s; model written to {paths.model_dir}.")
    return 0
