"""The SageMaker container contract: paths, config files and environment variables.

Standard library only and free of side effects at import, so that `train`, `serve`, the HTTP layer and the tests
can all use it. Every other module asks this one where things are; none builds an `/opt/ml` path itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

DEFAULT_BASE_DIR = "/opt/ml"
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
    input_mode: str = "File"
    content_type: str | None = None


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
        channels[name] = Channel(name, paths.channel_dir(name), mode, spec.get("ContentType"))
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

    @property
    def node_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def is_main_host(self) -> bool:
        return self.node_rank == 0


def read_resource_config(paths: MLPaths) -> ResourceConfig:
    if not paths.resource_config_file.exists():
        return ResourceConfig()
    data = _read_json_object(paths.resource_config_file, "the resource config")
    hosts = tuple(sorted(data.get("hosts") or ["algo-1"]))
    current = data.get("current_host") or hosts[0]
    return ResourceConfig(current, hosts, data.get("network_interface_name") or "eth0")


# --- serving environment (CONTRACT A2) ------------------------------------------------------------------------


def _env_int(environ: Mapping[str, str], name: str, default: int | None, minimum: int = 1) -> int | None:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{name}={raw!r} is not a whole number.", f"Set {name} to an integer >= {minimum}.") from None
    if value < minimum:
        raise UserError(f"{name}={value} is below {minimum}.", f"Set {name} to an integer >= {minimum}.")
    return value


@dataclass(frozen=True)
class ServingEnvironment:
    """The SAGEMAKER_* variables that a model server reads, parsed once."""

    port: int = 8080
    workers: int | None = None  # None: the server chooses from the hardware
    timeout_seconds: int = 60
    max_payload_mb: int = 6
    batch_transform: bool = False
    batch_strategy: str = "MULTI_RECORD"
    max_concurrent_transforms: int | None = None
    default_accept: str = "application/json"
    default_accept_set: bool = False  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT was given (else the server may choose)
    log_level: str = "INFO"
    safe_port_range: str | None = field(default=None)

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024


_LOG_LEVELS = {"10": "DEBUG", "20": "INFO", "30": "WARNING", "40": "ERROR", "50": "CRITICAL"}


def log_level(environ: Mapping[str, str] | None = None) -> str:
    """SAGEMAKER_CONTAINER_LOG_LEVEL as a logging level name; the toolkits accept names and numbers (20)."""
    environ = os.environ if environ is None else environ
    level = (environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL") or "INFO").strip().upper()
    level = _LOG_LEVELS.get(level, level)
    return level if level in _LOG_LEVELS.values() else "INFO"


def serving_environment(environ: Mapping[str, str] | None = None) -> ServingEnvironment:
    environ = os.environ if environ is None else environ
    level = log_level(environ)
    strategy = (environ.get("SAGEMAKER_BATCH_STRATEGY") or "MULTI_RECORD").strip().upper()
    if strategy not in ("SINGLE_RECORD", "MULTI_RECORD"):
        raise UserError(
            f"SAGEMAKER_BATCH_STRATEGY={strategy!r} is not a batch strategy.",
            "Use SINGLE_RECORD or MULTI_RECORD.",
        )
    return ServingEnvironment(
        port=_env_int(environ, "SAGEMAKER_BIND_TO_PORT", 8080),
        workers=_env_int(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", None),
        timeout_seconds=_env_int(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60),
        max_payload_mb=_env_int(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 6),
        batch_transform=(environ.get("SAGEMAKER_BATCH") or "").strip().lower() == "true",
        batch_strategy=strategy,
        max_concurrent_transforms=_env_int(environ, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", None),
        default_accept=(environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "application/json").strip(),
        default_accept_set=bool((environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "").strip()),
        log_level=level,
        safe_port_range=environ.get("SAGEMAKER_SAFE_PORT_RANGE") or None,
    )
