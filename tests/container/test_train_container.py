"""`docker run IMAGE train` on a mounted /opt/ml tree, as a SageMaker training job runs it."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from docker_support import ARBITRARY_USER, container_state, docker, logs, ml_tree
from harness import failure_text

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "textclf.json"]


def train(image, name, tree, *run_args, command=("train",), timeout=600) -> subprocess.CompletedProcess:
    return docker(
        "run", "--name", name, "--network", "none", "--volume", f"{tree}:/opt/ml", *run_args, image, *command,
        timeout=timeout, check=False,
    )  # fmt: skip


def test_train_leaves_model_and_metrics_and_no_failure(trained_tree):
    tree, result = trained_tree.base, trained_tree.result
    assert result.returncode == 0, trained_tree.output[-3000:]
    for name in MODEL_FILES:
        assert (tree / "model" / name).is_file(), name
    assert not any(tree.glob("model/**/checkpoint*")), "checkpoints do not belong in model.tar.gz"
    history = json.loads((tree / "output" / "data" / "metrics.json").read_text())["history"]
    assert any("eval_accuracy" in entry for entry in history)
    assert "eval_accuracy=" in result.stdout  # the metric lines SageMaker's MetricDefinitions scrape
    assert not (tree / "output" / "failure").exists()


def test_train_runs_under_an_arbitrary_uid(image, containers, tmp_path, tiny_bert_base):
    tree = ml_tree(tmp_path, tiny_bert_base, max_steps="5")
    result = train(image, containers.name("train-uid"), tree, "--user", ARBITRARY_USER)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    written = tree / "model" / "model.safetensors"
    assert written.stat().st_uid == int(ARBITRARY_USER.split(":")[0])


# A package source train imports, made newer than its .pyc before train runs: a few of pip's .pyc files are
# out of date in every build (a different few each time), and importing one must not rewrite it in the image.
STALE_MODULE = "site-packages/transformers/__init__.py"


def test_train_writes_nothing_outside_opt_ml_and_tmp(image, containers, tmp_path, tiny_bert_base):
    name = containers.name("train-diff")
    tree = ml_tree(tmp_path, tiny_bert_base, max_steps="3")
    stale_then_train = f"touch /opt/venv/lib/python3*/{STALE_MODULE} && exec train"
    result = train(image, name, tree, command=("sh", "-c", stale_then_train))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    changed = docker("diff", name).stdout.split("\n")  # lines like "A /tmp/matplotlib", "C /opt"
    paths = [line.split(" ", 1)[1] for line in changed if line.strip()]
    touched = [p for p in paths if p.endswith("/" + STALE_MODULE)]
    assert touched, f"the test's own change is missing from docker diff: {paths}"
    allowed = ("/tmp", "/opt/ml", *touched)
    outside = [p for p in paths if not p.startswith(allowed) and not any(a.startswith(p + "/") for a in allowed)]
    assert not outside, f"train wrote outside /opt/ml and /tmp: {outside}"


def test_train_completes_on_a_read_only_root_filesystem(image, containers, tmp_path, tiny_bert_base):
    tree = ml_tree(tmp_path, tiny_bert_base, max_steps="3")
    result = train(image, containers.name("train-read-only"), tree, "--read-only", "--tmpfs", "/tmp")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert (tree / "model" / "model.safetensors").is_file()
    assert (tree / "output" / "data" / "learning_curves.png").is_file()  # matplotlib found a writable cache
    assert "Read-only file system" not in output, output[-3000:]


def test_a_broken_hyperparameter_leaves_a_failure_and_a_non_zero_exit(image, containers, tmp_path, tiny_bert_base):
    tree = ml_tree(tmp_path, tiny_bert_base, epochs="three")
    result = train(image, containers.name("train-broken"), tree)
    assert result.returncode != 0
    reason = failure_text(tree)
    assert "epochs" in reason, reason
    assert not (tree / "model" / "model.safetensors").exists()


def test_docker_stop_checkpoints_and_the_next_run_resumes(image, containers, tmp_path, tiny_bert_base):
    # Long enough that `docker stop` lands mid-run; logging every step shows where it is.
    # No checkpoint is due before the stop: the one found afterwards is the one SIGTERM made.
    tree = ml_tree(
        tmp_path, tiny_bert_base, max_steps="400", checkpoint_steps="200", eval_steps="200", logging_steps="1"
    )
    name = containers.name("train-stop")
    process = subprocess.Popen(
        ["docker", "run", "--name", name, "--network", "none", "--volume", f"{tree}:/opt/ml", image, "train"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("step=20/"):
                break
        else:
            pytest.fail(f"train ended before step 20:\n{logs(name)[-3000:]}")
        stopping = time.monotonic()
        docker("stop", "--time", "30", name, timeout=60)  # SIGTERM, SIGKILL 30 s later
        process.communicate(timeout=60)
        seconds = time.monotonic() - stopping
    finally:
        if process.poll() is None:
            process.kill()
    assert container_state(name)["ExitCode"] == 143, logs(name)[-3000:]  # train's own "stopped" code, not SIGKILL
    assert seconds < 20, f"took {seconds:.1f} s to stop"
    assert any((tree / "checkpoints").iterdir()), "no checkpoint after docker stop"
    assert "Stopped by SIGTERM" in failure_text(tree)

    # SageMaker SDK v3 local training passes no argument: the entrypoint must pick train from the job's files.
    resumed = train(image, containers.name("train-resume"), tree, command=())
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output[-3000:]
    assert "so running train" in output
    assert "Resuming from checkpoint" in resumed.stdout
    assert "step=1/" not in resumed.stdout
    assert not (tree / "output" / "failure").exists()
