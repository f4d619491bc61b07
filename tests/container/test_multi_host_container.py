"""Two hosts for real: two containers of the image on a user-defined Docker network, with hostnames algo-1 and
algo-2 and one /opt/ml tree each, as SageMaker (and the SDK's local mode) runs a job with InstanceCount 2. Each
runs `train` with its own resourceconfig.json; they meet on algo-1 and train data-parallel with gloo over eth0."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from docker_support import container_state, docker, logs, ml_tree
from harness import failure_text
from safetensors.torch import load_file

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

HOSTS = ["algo-1", "algo-2"]
STEPS = 60
HYPER = {"max_steps": str(STEPS), "checkpoint_steps": "20", "eval_steps": "20", "logging_steps": "1"}


@pytest.fixture(scope="module")
def network(docker_engine):
    name = f"textclf-test-net-{os.getpid()}"
    docker("network", "rm", name, check=False)
    docker("network", "create", name)
    yield name
    docker("network", "rm", name, check=False)


class Job:
    """One training job on two hosts: a tree and a container per host."""

    def __init__(self, image: str, network: str, containers, root: Path, base_model: Path, **hyper: str) -> None:
        self.image, self.network, self.containers = image, network, containers
        self.trees = {host: ml_tree(root / host, base_model, **{**HYPER, **hyper}) for host in HOSTS}
        for host, tree in self.trees.items():
            resource = {"current_host": host, "hosts": HOSTS, "network_interface_name": "eth0"}
            (tree / "input" / "config" / "resourceconfig.json").write_text(json.dumps(resource))
        self.names: dict[str, str] = {}

    def start(self, purpose: str) -> Job:
        for host in reversed(HOSTS):  # algo-2 first: it must wait for algo-1, as on SageMaker where either may lag
            name = self.containers.name(f"{purpose}-{host}")
            docker(
                "run", "--detach", "--name", name, "--hostname", host, "--network", self.network,
                "--network-alias", host, "--volume", f"{self.trees[host]}:/opt/ml", self.image, "train",
            )  # fmt: skip
            self.names[host] = name
        return self

    def wait(self, timeout: float = 600) -> dict[str, int]:
        codes = {}
        for host, name in self.names.items():
            result = docker("wait", name, timeout=timeout)
            codes[host] = int(result.stdout.strip())
        return codes

    def log(self, host: str) -> str:
        return logs(self.names[host])

    def wait_for(self, host: str, pattern: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log(host), re.MULTILINE):
                return
            state = container_state(self.names[host])
            assert state["Running"], f"{host} exited with {state['ExitCode']}:\n{self.log(host)[-4000:]}"
            time.sleep(0.5)
        raise AssertionError(f"{host} never logged {pattern!r}:\n{self.log(host)[-4000:]}")


def _empty(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


def _steps_of(output: str, host: str) -> list[int]:
    if host == "algo-1":  # global rank 0 prints the metric lines
        return [int(m) for m in re.findall(r"^step=(\d+)/", output, re.MULTILINE)]
    return [
        int(m) for m in re.findall(r"Worker rank \d+ of \d+ \(local rank 0 on algo-2\) finished step (\d+)/", output)
    ]


@pytest.fixture(scope="module")
def finished(image, network, tmp_path_factory, tiny_bert_base):
    """One job of STEPS steps on two hosts, run to the end: (job, exit codes, seconds)."""
    from docker_support import Containers

    containers = Containers(os.getpid())
    job = Job(image, network, containers, tmp_path_factory.mktemp("two-hosts"), tiny_bert_base)
    started = time.monotonic()
    codes = job.start("finished").wait()
    seconds = time.monotonic() - started
    outputs = {host: job.log(host) for host in HOSTS}
    containers.remove_all()
    return job, codes, seconds, outputs


def test_two_hosts_train_one_model_written_by_the_first_host(finished):
    job, codes, seconds, outputs = finished
    print(f"two-container job of {STEPS} steps: {seconds:.1f} s from docker run to both exited")
    assert codes == {"algo-1": 0, "algo-2": 0}, outputs["algo-1"][-3000:] + outputs["algo-2"][-3000:]
    assert "Data-parallel training: 2 workers on 2 host(s) (algo-1, algo-2)" in outputs["algo-2"]
    assert (job.trees["algo-1"] / "model" / "model.safetensors").is_file()
    assert _empty(job.trees["algo-2"] / "model")  # SageMaker uploads it too: it must stay empty
    assert _empty(job.trees["algo-2"] / "checkpoints")
    assert (job.trees["algo-1"] / "output" / "data" / "metrics.json").is_file()
    # Both hosts took every step, in step with each other; only algo-1 printed metric lines.
    assert _steps_of(outputs["algo-1"], "algo-1") == list(range(1, STEPS + 1))
    assert _steps_of(outputs["algo-2"], "algo-2") == list(range(1, STEPS + 1))
    assert "train_loss=" not in outputs["algo-2"] and "eval_accuracy=" not in outputs["algo-2"]


def test_a_dead_worker_on_algo_2_fails_the_job_on_both_hosts_quickly(
    image, network, containers, tmp_path, tiny_bert_base
):
    job = Job(image, network, containers, tmp_path, tiny_bert_base, max_steps="5000").start("dead")
    job.wait_for("algo-1", r"^step=5/")
    workers = docker("exec", job.names["algo-2"], "cat", "/proc/1/task/1/children").stdout.split()
    killed = time.monotonic()
    kill = f"import os; os.kill({int(workers[0])}, 9)"  # SIGKILL, as the out-of-memory killer would
    docker("exec", job.names["algo-2"], "python3", "-c", kill)
    codes = job.wait(timeout=180)
    seconds = time.monotonic() - killed
    assert codes == {"algo-1": 1, "algo-2": 1}, job.log("algo-1")[-3000:]
    assert seconds < 60, f"the job took {seconds:.0f} s to fail"
    reason_2 = failure_text(job.trees["algo-2"])
    assert "Worker rank 1 (local rank 0) on host algo-2 was killed by signal 9 (SIGKILL)" in reason_2, reason_2
    reason_1 = failure_text(job.trees["algo-1"])
    assert "Lost contact with the job's other workers" in reason_1, reason_1
    assert not (job.trees["algo-1"] / "model" / "model.safetensors").exists()


def test_sigterm_to_both_hosts_then_a_restart_resumes_to_the_same_model(
    finished, image, network, containers, tmp_path, tiny_bert_base
):
    job = Job(image, network, containers, tmp_path, tiny_bert_base).start("stopped")
    job.wait_for("algo-1", r"^step=25/")
    stopping = time.monotonic()
    names = list(job.names.values())
    subprocess.run(["docker", "stop", "--time", "110", *names], capture_output=True, timeout=180)
    seconds = time.monotonic() - stopping
    codes = {host: container_state(name)["ExitCode"] for host, name in job.names.items()}
    assert codes == {"algo-1": 143, "algo-2": 143}, job.log("algo-1")[-3000:] + job.log("algo-2")[-3000:]
    assert seconds < 60, f"took {seconds:.0f} s to stop"
    steps = sorted(int(p.name.split("-")[1]) for p in (job.trees["algo-1"] / "checkpoints").glob("step-*"))
    assert 25 <= steps[-1] < 40, steps
    assert "Stopped by SIGTERM at step" in failure_text(job.trees["algo-1"])
    assert "Stopped by SIGTERM" in failure_text(job.trees["algo-2"])

    restarted = job.start("restarted").wait()
    assert restarted == {"algo-1": 0, "algo-2": 0}, job.log("algo-1")[-3000:] + job.log("algo-2")[-3000:]
    assert f"at step {steps[-1]}/{STEPS}" in job.log("algo-1")
    straight = load_file(finished[0].trees["algo-1"] / "model" / "model.safetensors")
    resumed = load_file(job.trees["algo-1"] / "model" / "model.safetensors")
    different = [name for name in straight if not (straight[name] == resumed[name]).all()]
    assert not different, f"weights differ after resume: {different[:5]}"
    assert _empty(job.trees["algo-2"] / "model")


def test_killing_the_algo_2_container_fails_algo_1_quickly(image, network, containers, tmp_path, tiny_bert_base):
    job = Job(image, network, containers, tmp_path, tiny_bert_base, max_steps="5000").start("lost")
    job.wait_for("algo-1", r"^step=5/")
    killed = time.monotonic()
    docker("kill", job.names["algo-2"])  # the whole instance gone at once: nothing on it can write a word
    code = int(docker("wait", job.names["algo-1"], timeout=180).stdout.strip())
    seconds = time.monotonic() - killed
    print(f"algo-1 failed {seconds:.1f} s after algo-2 was killed")
    assert code == 1, job.log("algo-1")[-3000:]
    assert seconds < 60, f"algo-1 took {seconds:.0f} s to fail"
    reason = failure_text(job.trees["algo-1"])
    assert reason.startswith("Worker rank 0 on algo-1: Lost contact with the job's other workers"), reason
