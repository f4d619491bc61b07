"""`serve`: check what can be checked without torch, then run nginx in front of gunicorn and supervise both.

A missing or unreadable model directory, a bad setting, or no nginx, ends `serve` at once with exit code 2 and
one paragraph on stderr saying what was wrong and what to change, instead of workers that crash and restart.
`serve` itself stays in the foreground (PID 1 in a container), so SageMaker's SIGTERM reaches it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .. import environment
from ..contract import ServingEnvironment, ml_paths, serving_environment
from ..errors import UserError
from . import user_code
from .codecs import check_default_accept
from .front import NginxBuild, find_nginx, front_limits
from .modelinfo import describe_model
from .settings import ServingSettings, cpu_count, load_settings, plan_processes, visible_gpu_ids
from .supervisor import Supervisor

CONTAINER_DIR = Path(__file__).resolve().parents[2]  # .../container, which holds the textclf package
APP = "textclf.serving.app:gunicorn_app()"
CONFIG = "python:textclf.serving.gunicorn_conf"
EXIT_USAGE = 2
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"  # as gunicorn_conf.py logs


def gunicorn_command() -> list[str]:
    # The same interpreter that runs `serve` (the image's, or a virtual environment's) runs gunicorn.
    return [sys.executable, "-m", "gunicorn", "-c", CONFIG, APP]


def check() -> NginxBuild:
    """Everything that would make every worker fail, found before any worker starts; the nginx to run."""
    env = serving_environment()
    settings = load_settings()
    check_default_accept(env.default_accept)
    plan_processes(env, settings, cpu_count(), visible_gpu_ids())
    script = user_code.locate(env, ml_paths().model_dir)
    if script is None:
        describe_model(ml_paths().model_dir)
    else:  # its model_fn may load anything: the built-in model is checked in the worker, if it is needed
        user_code.check_syntax(script)
    return find_nginx()


def _settings_help() -> str:
    sections = []
    for title, settings in (("SageMaker's variables", ServingEnvironment), ("the server's own knobs", ServingSettings)):
        rows = environment.describe(settings)
        width = max(len(name) for name, _, _ in rows)
        lines = [f"  {name:<{width}}  {meaning} [default: {default}]" for name, default, meaning in rows]
        sections.append(f"{title} (environment):\n" + "\n".join(lines))
    return "\n\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="serve",
        description="Serve the model in $SAGEMAKER_BASE_DIR/model (default /opt/ml/model) on /ping and /invocations.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    try:
        nginx = check()
        script = user_code.locate(serving_environment(), ml_paths().model_dir)
        if script is not None and user_code.install_requirements(script):
            print(f"serve: installed {script.parent / user_code.REQUIREMENTS}", file=sys.stderr, flush=True)
    except UserError as exc:
        print(f"serve: cannot start: {exc.cause} {exc.remedy}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    env = serving_environment()
    logging.basicConfig(level=env.log_level, format=LOG_FORMAT, stream=sys.stderr)
    # gunicorn imports the config and the app by module name: make the package importable without installation.
    paths = [str(CONTAINER_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return Supervisor(gunicorn_command(), nginx, front_limits(env), env.log_level).run()
