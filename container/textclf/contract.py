"""The SageMaker container contract: paths, config files and environment variables.

Standard library only and free of side effects at import, so that `train`, `serve`, the HTTP layer and the tests
can all use it. Every other module asks this one where things are; none builds an `/opt/ml` path itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .environment import choice, text, variable, whole_number
from .environment import read as read_environment
from .errors import UserError

DEFAULT_BASE_DIR = "/opt/ml"
# SageMaker keeps this many characters of a job's failure file (a training job's FailureReason, a processing
# job's ExitMessage): every failure message is written to fit it.
FAILURE_MESSAGE_LIMIT = 1024
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"  # the inference toolkit's name; moves the whole tree (tests, laptops)

# Keys that SDKs and tuning jobs add to hyperparameters.json; they are not ours to interpret.
RESERVED_HYPERPARAMETER_PREFIXES = ("sagemaker_", "_")


@dataclass(frozen=True)
class MLPaths:
    """The `/opt/ml` tree, rooted wherever SAGEMAKER_BASE_DIR says."""

    base: Path

    @property
    def input_config(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.input_config / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.input_config / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.base / "input" / "data"

    def channel_dir(self, channel: str) -> Path:
        return self.data_dir / channel

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoints_dir(self) -> Path:
        return self.base / "checkpoints"


def ml_paths(environ: Mapping[str, str] | None = None) -> MLPaths:
    environ = os.environ if environ is None else environ
    return MLPaths(Path(environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))


def _read_json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}).",
            f"Write {what} as a JSON object.",
        ) from exc
    if not isinstance(data, dict):
        raise UserError(f"{path} holds a JSON {type(data).__name__}, not an object.", f"Write {what} as a JSON object.")
    return data


def decode_hyperparameter_value(raw: object) -> str:
    """One spelling for every way a client may have encoded a value.

    SageMaker passes strings as the client wrote them: `"3"`, `"2e-05"`, `"True"`, or JSON-quoted by the SDK's
    script mode (`"\\"bert\\""`). Non-string JSON values (a hand-written file) are turned back into text.
    """
    if not isinstance(raw, str):
        return json.dumps(raw) if not isinstance(raw, bool) else str(raw).lower()
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded.strip()
    return text


# Script mode: the SDKs' framework estimators (`PyTorch(entry_point="train.py", image_uri=...)`) name the user's
# program in this hyperparameter; SAGEMAKER_PROGRAM in the environment does the same. `train` then hands the job to
# the SageMaker training toolkit (training/script_mode.py) instead of running the built-in trainer.
SCRIPT_MODE_KEY = "sagemaker_program"
SCRIPT_MODE_ENV = "SAGEMAKER_PROGRAM"


def user_program(paths: MLPaths, environ: Mapping[str, str] | None = None) -> str | None:
    """The user's training program that the job names, or None for the built-in trainer."""
    environ = os.environ if environ is None else environ
    if environ.get(SCRIPT_MODE_ENV, "").strip():
        return environ[SCRIPT_MODE_ENV].strip()
    if not paths.hyperparameters_file.exists():
        return None
    data = _read_json_object(paths.hyperparameters_file, "the hyperparameters")
    program = decode_hyperparameter_value(data.get(SCRIPT_MODE_KEY, ""))
    return program or None


def read_hyperparameters(paths: MLPaths) -> dict[str, str]:
    """hyperparameters.json as name -> decoded string, reserved keys (sagemaker_*, _tuning_*) dropped."""
    if not paths.hyperparameters_file.exists():
        return {}
    data = _read_json_object(paths.hyperparameters_file, "the hyperparameters")
    return {
        key: decode_hyperparameter_value(value)
        for key, value in data.items()
        if not key.startswith(RESERVED_HYPERPARAMETER_PREFIXES)
    }


@dataclass(frozen=True)
class Channel:
    name: str
    path: Path
    sharded: bool = False  # S3DistributionType ShardedByS3Key: each host of the job got part of the files


def read_channels(paths: MLPaths) -> dict[str, Channel]:
    """Channels named in inputdataconfig.json, plus any directory under input/data (a hand-made tree)."""
    declared: dict = {}
    if paths.input_data_config_file.exists():
        declared = _read_json_object(paths.input_data_config_file, "the input data config")
    channels: dict[str, Channel] = {}
    for name, spec in declared.items():
        spec = spec if isinstance(spec, dict) else {}
        mode = spec.get("TrainingInputMode", "File")
        if mode == "Pipe":
            raise UserError(
                f"Channel '{name}' uses Pipe input mode, which this image does not read.",
                "Set the channel's InputMode to File or FastFile.",
            )
        sharded = spec.get("S3DistributionType") == "ShardedByS3Key"
        channels[name] = Channel(name, paths.channel_dir(name), sharded)
    if paths.data_dir.is_dir():
        for child in sorted(paths.data_dir.iterdir()):
            if child.is_dir() and child.name not in channels and not child.name.startswith("."):
                channels[child.name] = Channel(child.name, child)
    return channels


@dataclass(frozen=True)
class ResourceConfig:
    current_host: str = "algo-1"
    hosts: tuple[str, ...] = ("algo-1",)
    network_interface_name: str = "eth0"


def read_resource_config(paths: MLPaths) -> ResourceConfig:
    if not paths.resource_config_file.exists():
        return ResourceConfig()
    data = _read_json_object(paths.resource_config_file, "the resource config")
    hosts = tuple(sorted(data.get("hosts") or ["algo-1"]))
    current = data.get("current_host") or hosts[0]
    return ResourceConfig(current, hosts, data.get("network_interface_name") or "eth0")


# --- processing jobs ----------------------------------------------------------------------------------------
# A processing job has no channels or hyperparameters: SageMaker copies each input to the LocalPath the job names
# (by convention under processing/input/), uploads each output's LocalPath (under processing/output/) when the
# container exits, and describes the job in config/processingjobconfig.json. The first 1 KB of output/message
# becomes the job's ExitMessage, the place to say why it failed.

PROCESSING_CONFIG_DIR = "config"


@dataclass(frozen=True)
class ProcessingPaths:
    """The `/opt/ml` tree of a processing job, rooted wherever SAGEMAKER_BASE_DIR says."""

    base: Path

    @property
    def job_config_file(self) -> Path:
        return self.base / PROCESSING_CONFIG_DIR / "processingjobconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.base / PROCESSING_CONFIG_DIR / "resourceconfig.json"

    @property
    def input_dir(self) -> Path:
        return self.base / "processing" / "input"

    @property
    def output_dir(self) -> Path:
        return self.base / "processing" / "output"

    @property
    def message_file(self) -> Path:
        return self.base / "output" / "message"

    def local(self, path: str) -> Path:
        """A LocalPath from the job config, moved under `base` when the tree is not at /opt/ml (tests, laptops)."""
        given = Path(path)
        if str(self.base) != DEFAULT_BASE_DIR and given.is_relative_to(DEFAULT_BASE_DIR):
            return self.base / given.relative_to(DEFAULT_BASE_DIR)
        return given


def processing_paths(environ: Mapping[str, str] | None = None) -> ProcessingPaths:
    return ProcessingPaths(ml_paths(environ).base)


@dataclass(frozen=True)
class ProcessingJob:
    """What processingjobconfig.json says about the container's files: input and output names to local paths."""

    name: str
    inputs: dict[str, Path]
    outputs: dict[str, Path]
    hosts: tuple[str, ...] = ("algo-1",)


def read_processing_job(paths: ProcessingPaths) -> ProcessingJob | None:
    """The job's inputs and outputs, or None outside a processing job (no config file: a hand-made tree)."""
    if not paths.job_config_file.exists():
        return None
    data = _read_json_object(paths.job_config_file, "the processing job config")
    inputs: dict[str, Path] = {}
    for item in data.get("ProcessingInputs") or []:
        local = (item.get("S3Input") or item.get("DatasetDefinition") or {}).get("LocalPath")
        if item.get("InputName") and local:
            inputs[item["InputName"]] = paths.local(local)
    outputs: dict[str, Path] = {}
    for item in (data.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        local = (item.get("S3Output") or {}).get("LocalPath")
        if item.get("OutputName") and local:
            outputs[item["OutputName"]] = paths.local(local)
    hosts: tuple[str, ...] = ("algo-1",)
    if paths.resource_config_file.exists():
        resources = _read_json_object(paths.resource_config_file, "the resource config")
        hosts = tuple(sorted(resources.get("hosts") or hosts))
    return ProcessingJob(str(data.get("ProcessingJobName") or ""), inputs, outputs, hosts)


# --- serving environment ----------------------------------------------------------------------------------------
# The variables SageMaker (or the inference toolkits' conventions) set for a model server. TEXTCLF_* knobs of our
# own live in textclf.serving.settings; both are read by textclf.environment.

_LOG_LEVELS = {"10": "DEBUG", "20": "INFO", "30": "WARNING", "40": "ERROR", "50": "CRITICAL"}


def _log_level(name: str, raw: str) -> str:
    """A logging level name; the toolkits accept names and numbers (20). Anything else is INFO, as they do."""
    level = _LOG_LEVELS.get(raw.upper(), raw.upper())
    return level if level in _LOG_LEVELS.values() else "INFO"


@dataclass(frozen=True)
class ServingEnvironment:
    """The SAGEMAKER_* variables that a model server reads."""

    port: int = variable("SAGEMAKER_BIND_TO_PORT", 8080, "port on 0.0.0.0", whole_number())
    workers: int | None = variable(
        "SAGEMAKER_MODEL_SERVER_WORKERS", None, "gunicorn workers (each holds one copy of the model)",
        whole_number(), "one per GPU; on CPU one per 4 cores, as memory allows",
    )  # fmt: skip
    timeout_seconds: int = variable(
        "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60,
        "seconds: gunicorn's worker timeout and each request's limit on inference (then 503)", whole_number(),
    )  # fmt: skip
    max_payload_mb: int = variable(
        "SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, "largest request body in MB (413 above it)", whole_number()
    )
    batch_transform: bool = variable(
        "SAGEMAKER_BATCH", False, "set to true by batch transform", lambda name, raw: raw.lower() == "true"
    )
    batch_strategy: str = variable(
        "SAGEMAKER_BATCH_STRATEGY", "MULTI_RECORD", "reported by /execution-parameters",
        choice("SINGLE_RECORD", "MULTI_RECORD", upper=True),
    )  # fmt: skip
    max_concurrent_transforms: int | None = variable(
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", None, "reported by /execution-parameters", whole_number(),
        "two per worker",
    )  # fmt: skip
    default_accept: str | None = variable(
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", None, "answer format when the request has no Accept preference",
        text, "the request's own format, else JSON",
    )  # fmt: skip
    log_level: str = variable(
        "SAGEMAKER_CONTAINER_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING, ERROR (or 10-50)", _log_level
    )
    program: str | None = variable(
        "SAGEMAKER_PROGRAM", None, "the inference script (inference hooks), in SAGEMAKER_SUBMIT_DIRECTORY",
        text, "model/code/inference.py when it exists",
    )  # fmt: skip
    submit_directory: str | None = variable(
        "SAGEMAKER_SUBMIT_DIRECTORY", None, "directory holding SAGEMAKER_PROGRAM (set by the SDK's Model)",
        text, "model/code",
    )  # fmt: skip

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024


def log_level(environ: Mapping[str, str] | None = None) -> str:
    """SAGEMAKER_CONTAINER_LOG_LEVEL as a logging level name (train reads it too)."""
    return read_environment(ServingEnvironment, environ).log_level


def serving_environment(environ: Mapping[str, str] | None = None) -> ServingEnvironment:
    return read_environment(ServingEnvironment, environ)
