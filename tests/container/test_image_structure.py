"""The image as built: labels, entry point, environment, installed packages, and what must not be in it."""

from __future__ import annotations

import json
import re

import pytest
from docker_support import REPO, docker

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]


def inspect(image: str) -> dict:
    return json.loads(docker("image", "inspect", image).stdout)[0]


def run(image: str, *command: str, entrypoint: str | None = None) -> str:
    args = ["run", "--rm", "--network", "none"]
    if entrypoint is not None:
        args += ["--entrypoint", entrypoint]
    return docker(*args, image, *command).stdout


# `pip freeze` of the image's own layer: the site-packages of the venv that python3 runs in.
VENV_FREEZE = (
    "import subprocess, sys, sysconfig; subprocess.run([sys.executable, '-m', 'pip', 'list', '--format', 'freeze', "
    "'--path', sysconfig.get_path('purelib')], check=True)"
)


def pinned(lock: str) -> dict[str, str]:
    """{normalised name: version} of a requirements file's `name==version` lines."""
    pins = {}
    for line in lock.splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;#]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_image_labels_declare_bind_to_port_version_revision_and_base(image):
    labels = inspect(image)["Config"]["Labels"]
    assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert labels["org.opencontainers.image.version"] not in ("", "dev")
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    assert labels["org.opencontainers.image.base.name"]


def test_entrypoint_is_exec_form_and_caches_go_to_tmp(image):
    config = inspect(image)["Config"]
    assert config["Entrypoint"] == ["/opt/program/entrypoint"]  # exec form: no shell swallows SIGTERM
    assert not config["Cmd"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/program:")
    for name, value in {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}.items():
        assert env[name] == value
    for name in ("HF_HOME", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        assert env[name].startswith("/tmp/"), name  # writable by any uid


def test_train_and_serve_resolve_to_the_project_programs(image):
    found = run(image, "sh", "-c", "which -a train; echo --; which -a serve", entrypoint="")
    trains, serves = (part.split() for part in found.split("--"))
    assert trains == ["/opt/program/train"], "another `train` on PATH (sagemaker-training's console script?)"
    assert serves == ["/opt/program/serve"]


def test_the_program_runs_as_pid_1(image):
    # The entrypoint execs its command, so the program itself receives SIGTERM from `docker stop` / SageMaker.
    assert run(image, "sh", "-c", "echo $$").strip() == "1"


def test_any_other_command_runs_as_given(image):
    assert run(image, "echo", "hello from the image").strip() == "hello from the image"


def test_pip_check_is_clean(image):
    assert "No broken requirements found" in run(image, "python3", "-m", "pip", "check")


def test_dependencies_come_from_the_lock_file(image):
    """Every package the image adds (the /opt/venv layer) is pinned in requirements/image.txt at that version,
    and every pin is importable at its version (from the venv, or from the base when the base has it)."""
    lock = pinned((REPO / "requirements" / "image.txt").read_text())
    added = pinned(run(image, "python3", "-c", VENV_FREEZE))
    assert added, "nothing installed in /opt/venv"
    unpinned = {name: version for name, version in added.items() if lock.get(name) != version}
    assert not unpinned, f"installed but not pinned in requirements/image.txt: {unpinned}"
    everything = pinned(run(image, "python3", "-m", "pip", "list", "--format", "freeze"))
    mismatched = {
        name: (version, everything.get(name)) for name, version in lock.items() if everything.get(name) != version
    }
    assert not mismatched, f"(pinned, installed) differ: {mismatched}"


def test_torch_and_the_serving_stack_import(image):
    out = run(
        image,
        "python3",
        "-W",
        "ignore",
        "-c",
        "import torch, transformers, tokenizers, flask, gunicorn, matplotlib.pyplot; "
        "print(torch.__version__, transformers.__version__)",
    )
    assert out.split()[1] == pinned((REPO / "requirements" / "image.txt").read_text())["transformers"]


def test_nothing_lives_under_opt_ml_and_no_weights_or_caches_are_baked_in(image):
    # /opt/ml belongs to SageMaker: it mounts input, model and output there at run time.
    found = run(
        image,
        "sh",
        "-c",
        "test ! -e /opt/ml && echo no-opt-ml; "
        "find / -xdev \\( -name '*.safetensors' -o -name 'pytorch_model.bin' -o -name '*.ckpt' "
        "-o -path /root/.cache -o -path /tmp/huggingface -o -path '*/.cache/huggingface' \\) -print; "
        "find /tmp /var/cache/apt -mindepth 1 -maxdepth 1 -print",
        entrypoint="",
    )
    assert found.splitlines() == ["no-opt-ml"], found


def test_the_training_toolkit_imports_and_no_compiler_reached_the_image(image):
    # sagemaker-training is built from source (a C extension) in the deps stage; the compiler stays there.
    out = run(
        image,
        "sh",
        "-c",
        "python3 -c 'import sagemaker_training, gethostname; print(\"toolkit\", sagemaker_training.__name__)'; "
        "for tool in gcc cc c++ g++ x86_64-linux-gnu-gcc; do command -v $tool || true; done",
        entrypoint="",
    )
    assert out.split() == ["toolkit", "sagemaker_training"], out
