"""Fixtures of the SDK suite: the image driven by the SageMaker Python SDK's local mode (docker-compose), as a
user drives it, on file:// inputs and outputs. Runs in its own venv (requirements/sdk.txt, `make test-sdk`).

With no Docker Engine or no docker-compose the suite skips, loudly: a warning at once, the reason on every
skipped test, and a banner in pytest's summary. It never passes without having run the image.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from docker_support import REPO, docker, engine_problem, free_port, image_under_test
from moto.server import ThreadedMotoServer
from sagemaker.estimator import Estimator
from sample_data import make_rows
from sdk_support import (
    TELEMETRY_OPT_OUT,
    file_uri,
    local_session,
    make_estimator,
    remove_compose_containers,
    sdk_environment,
    write_channel,
)

_skipped_for: list[str] = []


def _compose_problem() -> str | None:
    if shutil.which("docker-compose") is None and docker("compose", "version", check=False).returncode != 0:
        return "neither `docker compose` nor `docker-compose` is installed (local mode runs docker-compose)"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = engine_problem() or _compose_problem()
    if problem:
        message = f"SDK SUITE SKIPPED: {problem}; the image was NOT tested with the SageMaker Python SDK."
        print(f"\nWARNING: {message}", file=sys.__stderr__, flush=True)
        _skipped_for.append(message)
        pytest.skip(message)


def pytest_collection_modifyitems(items) -> None:
    # The first test also pays for the session's fit (ten epochs of the tiny model: minutes on a busy 2-core CI).
    for item in items:
        if "tests/sdk/" in str(item.path):
            item.add_marker(pytest.mark.timeout(1200))


def pytest_terminal_summary(terminalreporter) -> None:
    if _skipped_for:
        terminalreporter.section("SDK suite", sep="!", red=True, bold=True)
        terminalreporter.write_line(f"WARNING: {_skipped_for[0]}", red=True, bold=True)


@pytest.fixture(scope="session", autouse=True)
def sdk_settings(tmp_path_factory):
    """The environment the README asks for (fake credentials, a region, the telemetry opt-out), for the session;
    this session's local-mode containers removed at the end."""
    config = tmp_path_factory.mktemp("sdk-config") / "config.yaml"
    config.write_text(TELEMETRY_OPT_OUT)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in sdk_environment(config).items():
            patch.setenv(name, value)
        yield
    if not _skipped_for:
        remove_compose_containers()


@pytest.fixture(scope="session")
def image(docker_engine) -> str:
    """The image under test: $TEXTCLF_TEST_IMAGE, or built from this checkout."""
    return image_under_test()


@pytest.fixture(scope="session")
def base_model(image, tmp_path_factory) -> Path:
    """The tiny BERT of tools/tiny_models.py, built inside the image: this venv has no torch."""
    out = tmp_path_factory.mktemp("tiny-bert")
    mounts = ["--volume", f"{REPO / 'tools'}:/opt/tools:ro", "--volume", f"{out}:/out"]
    build = ["python3", "/opt/tools/tiny_models.py", "bert", "/out", "--seed", "0"]
    docker("run", "--rm", "--network", "none", *mounts, image, *build, timeout=300)
    return out


@pytest.fixture(scope="session")
def sdk_session(tmp_path_factory):
    return local_session(tmp_path_factory.mktemp("sdk-local"), free_port())


@pytest.fixture(scope="session")
def s3_endpoint(docker_engine):
    """An S3 stand-in (moto in server mode) on loopback: local mode's Processor and Model repacking go through S3.
    Local mode downloads S3 inputs on this host and mounts them, so no container needs to reach it."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_session(tmp_path_factory, s3_endpoint):
    """A local-mode session whose S3 is the stand-in."""
    return local_session(tmp_path_factory.mktemp("sdk-local-s3"), free_port(), s3_endpoint)


@pytest.fixture(scope="session")
def channels(tmp_path_factory, base_model) -> dict[str, str]:
    """file:// inputs: the four-topic sample split into train and validation, and the base model."""
    root = tmp_path_factory.mktemp("inputs")
    rows = make_rows(400)
    return {
        "train": write_channel(root / "train", rows[:340]),
        "validation": write_channel(root / "validation", rows[340:]),
        "model": file_uri(base_model),
    }


@pytest.fixture(scope="session")
def trained(image, sdk_session, channels, tmp_path_factory) -> Estimator:
    """One `Estimator.fit` with train, validation and model channels: the model the other tests deploy."""
    estimator = make_estimator(image, sdk_session, tmp_path_factory.mktemp("fit-output"))
    estimator.fit(channels, wait=True, logs="All")
    return estimator
