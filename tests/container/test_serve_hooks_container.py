"""`docker run IMAGE serve` with a team's inference script in the model directory (code/inference.py), as an
endpoint whose model archive holds one runs it."""

from __future__ import annotations

import shutil
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import requests
from docker_support import ARBITRARY_USER, ServingContainer, container_state, docker, logs, open_to_any_user
from sample_data import make_rows

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inference" / "inference.py"
LABELS = {"finance", "sport", "tech", "weather"}
TEXTS = [row["text"] for row in make_rows(4, seed=2024)]


def with_code(model_dir: Path, target: Path, script: str) -> Path:
    shutil.copytree(model_dir, target)
    (target / "code").mkdir()
    (target / "code" / "inference.py").write_text(textwrap.dedent(script))
    return open_to_any_user(target)


def test_the_example_inference_script_answers_in_the_image_as_any_uid(image, containers, served_model, tmp_path):
    model = with_code(served_model, tmp_path / "model", EXAMPLE.read_text())
    server = ServingContainer(image, containers.name("serve-hooks"), model)
    server.start("--read-only", "--tmpfs", "/tmp", "--user", ARBITRARY_USER).wait_ready()
    answer = requests.post(f"{server.url}/invocations", json={"reviews": TEXTS}, timeout=60)
    assert answer.status_code == 200, answer.text
    answers = answer.json()["answers"]
    assert len(answers) == len(TEXTS) and all(a["label"] in LABELS | {"unsure"} for a in answers)
    refused = requests.post(f"{server.url}/invocations", json={"inputs": TEXTS}, timeout=60)
    assert refused.status_code == 400 and refused.json()["code"] == 400
    assert "code/inference.py defines input_fn, output_fn" in logs(server.name)


def test_a_raising_hook_answers_500_naming_it_and_an_import_error_stops_the_container(
    image, containers, served_model, tmp_path
):
    raising = """
        def predict_fn(data, model):
            raise KeyError("no such feature")
    """
    model = with_code(served_model, tmp_path / "raising", raising)
    # The warm-up request goes through predict_fn: a predict_fn that always raises stops the server at start.
    server = ServingContainer(image, containers.name("serve-hooks-raise"), model).start()
    deadline = time.monotonic() + 120
    while container_state(server.name)["Running"] and time.monotonic() < deadline:
        time.sleep(0.5)
    state = container_state(server.name)
    assert not state["Running"] and state["ExitCode"] != 0, logs(server.name)[-3000:]
    assert "predict_fn raised KeyError: 'no such feature'" in logs(server.name)

    sometimes = """
        def predict_fn(data, model):
            if data.inputs[0].text == "boom":
                raise KeyError("no such feature")
            return [{"label": "fine", "score": 1.0} for _ in data.inputs]
    """
    model = with_code(served_model, tmp_path / "sometimes", sometimes)
    server = ServingContainer(image, containers.name("serve-hooks-500"), model).start().wait_ready()
    answer = requests.post(f"{server.url}/invocations", json={"inputs": "boom"}, timeout=60)
    assert answer.status_code == 500 and answer.json()["error"].startswith("predict_fn raised KeyError")
    assert "Traceback" not in answer.text and "Traceback" in logs(server.name)
    answer = requests.post(f"{server.url}/invocations", json={"inputs": "calm"}, timeout=60)
    assert answer.json() == [{"label": "fine", "score": 1.0}]

    model = with_code(served_model, tmp_path / "broken", "import textclf_missing_dependency\n")
    server = ServingContainer(image, containers.name("serve-hooks-import"), model).start()
    deadline = time.monotonic() + 120
    while container_state(server.name)["Running"] and time.monotonic() < deadline:
        time.sleep(0.5)
    state = container_state(server.name)
    assert not state["Running"] and state["ExitCode"] != 0
    assert "No module named 'textclf_missing_dependency'" in logs(server.name)


def write_wheel(directory: Path, name: str, module_source: str) -> Path:
    """A pure-Python wheel made by hand (no build backend, no network): one module and its metadata."""
    dist = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": module_source,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: textclf-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist}/RECORD"])
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def test_requirements_install_from_shipped_wheels_without_network_or_stop_the_container(
    image, containers, served_model, tmp_path
):
    script = """
        import textclf_hook_dependency

        def output_fn(prediction, accept):
            return textclf_hook_dependency.WORD
    """
    model = with_code(served_model, tmp_path / "model", script)
    (model / "code" / "requirements.txt").write_text("textclf_hook_dependency==1.0\n")
    (model / "code" / "wheels").mkdir()
    write_wheel(model / "code" / "wheels", "textclf_hook_dependency", 'WORD = "from a shipped wheel"\n')
    open_to_any_user(model)
    # No network at all, as an endpoint with network isolation: the answer is read from inside the container.
    name = containers.name("serve-hooks-wheels")
    docker(
        "run", "--detach", "--name", name, "--network", "none", "--volume", f"{model}:/opt/ml/model:ro", image, "serve"
    )
    probe = textwrap.dedent(
        """
        import time, urllib.request
        for _ in range(240):
            try:
                urllib.request.urlopen("http://127.0.0.1:8080/ping", timeout=2)
                break
            except Exception:
                time.sleep(0.5)
        request = urllib.request.Request("http://127.0.0.1:8080/invocations", data=b'{"inputs": "x"}',
                                         headers={"Content-Type": "application/json"})
        print(urllib.request.urlopen(request, timeout=60).read().decode())
        """
    )
    answer = docker("exec", name, "python3", "-c", probe, timeout=180)
    assert answer.stdout.strip() == "from a shipped wheel", logs(name)[-3000:]
    assert "serve: installed /opt/ml/model/code/requirements.txt" in logs(name)

    (model / "code" / "requirements.txt").write_text("textclf_hook_dependency==1.0\ntextclf-not-shipped-anywhere==9\n")
    name = containers.name("serve-hooks-nowheel")
    docker(
        "run", "--detach", "--name", name, "--network", "none", "--volume", f"{model}:/opt/ml/model:ro", image, "serve"
    )
    deadline = time.monotonic() + 120
    while container_state(name)["Running"] and time.monotonic() < deadline:
        time.sleep(0.5)
    state = container_state(name)
    assert not state["Running"] and state["ExitCode"] == 2, logs(name)[-3000:]
    output = logs(name)
    assert "serve: cannot start: pip could not install /opt/ml/model/code/requirements.txt" in output
    assert "Ship the wheels in /opt/ml/model/code (or its wheels/)" in output
