"""The team's inference script (`inference.py`): where it is, and its hooks once imported. Standard library only.

The SageMaker inference toolkits' conventions: the script is `code/inference.py` in the model directory, or
SAGEMAKER_PROGRAM in SAGEMAKER_SUBMIT_DIRECTORY (the SDK's `Model(entry_point=...)` sets both: `/opt/ml/model/code`
after repacking the archive, `/opt/ml/code` in local mode). It may define model_fn, input_fn, predict_fn and
output_fn, or transform_fn alone; a function it leaves out is the built-in one (serving/handlers.py).
`serve` checks what it can before any worker starts (`locate`, `check_syntax`); each worker imports the script.
"""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..contract import ServingEnvironment
from ..errors import UserError

DEFAULT_SCRIPT = "inference.py"
CODE_DIR = "code"
# The hooks and how many arguments each takes; the toolkits also pass a context as one more, when asked for.
HOOKS = {
    "pre_model_fn": 1,  # before model_fn (the inference toolkit's)
    "model_fn": 1,
    "model_warmup_fn": 2,  # (model_dir, model), after model_fn and before the worker is ready
    "input_fn": 2,
    "predict_fn": 2,
    "output_fn": 2,
    "transform_fn": 4,
}
CHAIN = ("input_fn", "predict_fn", "output_fn")
REQUIREMENTS = "requirements.txt"
WHEELS_DIR = "wheels"  # besides the code directory itself, where shipped wheels are looked for
PIP_TAIL_LINES = 6
REPACK_ADVICE = (
    "Put the script in the model archive as code/inference.py (the SDK does so with framework_version 1.2 or later), "
    "or point SAGEMAKER_SUBMIT_DIRECTORY at a directory in the container."
)


def locate(env: ServingEnvironment, model_dir: Path) -> Path | None:
    """The script to import, or None when there is none (the built-in classifier alone)."""
    if env.program is None:
        script = model_dir / CODE_DIR / DEFAULT_SCRIPT
        return script if script.is_file() else None
    directory = env.submit_directory or str(model_dir / CODE_DIR)
    if "://" in directory and not directory.startswith("file://"):
        raise UserError(
            f"SAGEMAKER_SUBMIT_DIRECTORY={directory!r} is a remote location; this image does not download code.",
            REPACK_ADVICE,
        )
    name = env.program if env.program.endswith(".py") else f"{env.program}.py"  # a module name also does
    script = Path(directory.removeprefix("file://")) / name
    if not script.is_file():
        raise UserError(
            f"SAGEMAKER_PROGRAM={env.program!r} names no file: {script} does not exist.",
            "Name a script in SAGEMAKER_SUBMIT_DIRECTORY (default: code/ in the model directory). " + REPACK_ADVICE,
        )
    return script


def check_syntax(script: Path) -> None:
    """A script that cannot compile stops `serve` before any worker starts, with the line at fault."""
    try:
        compile(script.read_bytes(), str(script), "exec")
    except SyntaxError as exc:
        raise UserError(
            f"{script} line {exc.lineno}: {exc.msg} (a syntax error).", "Fix the inference script."
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"Cannot read {script}: {exc}.", "Make the inference script a readable Python file.") from None


def install_requirements(script: Path) -> bool:
    """pip-install the requirements.txt beside the script, once, before any worker starts (as the toolkits do).

    First from the wheels shipped in the code directory (or its wheels/) and what is already installed, with no
    index: that is all a network-isolated endpoint has. Only if that fails, from the package index as well.
    Returns whether there was a file to install."""
    requirements = script.parent / REQUIREMENTS
    if not requirements.is_file():
        return False
    links = [str(d) for d in (script.parent, script.parent / WHEELS_DIR) if d.is_dir()]
    base = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "-r",
        str(requirements),
    ]
    base += [arg for link in links for arg in ("--find-links", link)]
    offline = subprocess.run([*base, "--no-index"], capture_output=True, text=True)
    if offline.returncode == 0:
        return True
    online = subprocess.run([*base, "--retries", "1", "--timeout", "15"], capture_output=True, text=True)
    if online.returncode == 0:
        return True
    tail = " | ".join(line for line in (online.stderr or online.stdout).strip().splitlines()[-PIP_TAIL_LINES:])
    raise UserError(
        f"pip could not install {requirements} (exit {online.returncode}): {tail}",
        f"Ship the wheels in {script.parent} (or its {WHEELS_DIR}/) for an endpoint without network access "
        f"(`pip download -r {REQUIREMENTS} -d {WHEELS_DIR} --only-binary :all:` on a machine like the image's), "
        "or fix the requirement.",
    )


@dataclass(frozen=True)
class Hook:
    name: str
    function: Any
    takes_context: bool  # the toolkits' variant with one more argument, the request context

    def __call__(self, *args: Any, context: Any = None) -> Any:
        return self.function(*args, context) if self.takes_context else self.function(*args)


@dataclass(frozen=True)
class UserCode:
    script: Path
    hooks: dict[str, Hook]  # only those the script defines

    def describe(self) -> str:
        return f"{self.script} defines {', '.join(self.hooks) or 'no hooks'}"


def _hook(name: str, function: Any, script: Path) -> Hook:
    if not callable(function):
        raise UserError(f"{script}: {name} is not a function.", f"Define {name} with def, or remove the name.")
    expected = HOOKS[name]
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return Hook(name, function, False)
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return Hook(name, function, False)
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(required) <= expected <= len(positional):
        return Hook(name, function, False)
    if len(required) == expected + 1:
        return Hook(name, function, True)
    raise UserError(
        f"{script}: {name} takes {len(required)} arguments; it is called with {expected} "
        f"(or {expected + 1} with the request context).",
        f"Give {name} the toolkit's signature, e.g. {_SIGNATURES[name]}.",
    )


_SIGNATURES = {
    "pre_model_fn": "pre_model_fn(model_dir)",
    "model_fn": "model_fn(model_dir)",
    "model_warmup_fn": "model_warmup_fn(model_dir, model)",
    "input_fn": "input_fn(body, content_type)",
    "predict_fn": "predict_fn(data, model)",
    "output_fn": "output_fn(prediction, accept)",
    "transform_fn": "transform_fn(model, body, content_type, accept)",
}


def load(script: Path) -> UserCode:
    """Import the script as a module named after its file, with its directory first on sys.path, so that it imports
    its own neighbours as it would at home. An exception here is the script's: it propagates with its traceback."""
    directory = str(script.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[script.stem] = module  # pickles and neighbours that import the script find it
    spec.loader.exec_module(module)
    return UserCode(script, _collect(module, script))


def _collect(module: ModuleType, script: Path) -> dict[str, Hook]:
    hooks = {name: _hook(name, getattr(module, name), script) for name in HOOKS if hasattr(module, name)}
    others = [name for name in CHAIN if name in hooks]
    if "transform_fn" in hooks and others:
        raise UserError(
            f"{script} defines transform_fn and {', '.join(others)}: transform_fn replaces the whole chain.",
            "Keep transform_fn alone, or remove it and keep input_fn/predict_fn/output_fn.",
        )
    return hooks
