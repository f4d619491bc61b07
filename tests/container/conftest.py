"""Fixtures of the real-Docker suite: an answering Docker Engine, the image built from this checkout, containers
that are always removed, and models to mount.

With no Docker Engine the suite skips, loudly: a warning line at once, the reason on every skipped test, and a
banner in pytest's summary. It never passes without having run the image.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from docker_support import (
    BASE_IMAGE,
    IMAGE_ENV,
    LOCAL_BASE,
    REPO,
    TEST_IMAGE,
    Containers,
    TrainedTree,
    docker,
    engine_problem,
    ml_tree,
    open_to_any_user,
)

BUILD_TIMEOUT = 1800  # a cold machine builds the base (about 5 min) and the image (about 3 min)

_skipped_for: list[str] = []


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = engine_problem()
    if problem:
        message = f"CONTAINER SUITE SKIPPED: no Docker Engine answers ({problem}); the image was NOT tested."
        print(f"\nWARNING: {message}", file=sys.__stderr__, flush=True)
        _skipped_for.append(message)
        pytest.skip(message)


def pytest_terminal_summary(terminalreporter) -> None:
    if _skipped_for:
        terminalreporter.section("container suite", sep="!", red=True, bold=True)
        terminalreporter.write_line(f"WARNING: {_skipped_for[0]}", red=True, bold=True)


@pytest.fixture(scope="session")
def image(docker_engine) -> str:
    """The image under test: built from this checkout by docker/build-image.sh (cached layers make it quick)."""
    given = os.environ.get(IMAGE_ENV)
    if given:
        docker("image", "inspect", given)
        return given
    command = [str(REPO / "docker" / "build-image.sh"), TEST_IMAGE, BASE_IMAGE, LOCAL_BASE]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        pytest.fail(
            f"building the image failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return TEST_IMAGE


@pytest.fixture
def containers():
    named = Containers(os.getpid())
    yield named
    named.remove_all()


@pytest.fixture(scope="session")
def trained_tree(image, tiny_bert_base, tmp_path_factory) -> TrainedTree:
    """One `docker run IMAGE train` (as root, like SageMaker) on the sample data and the tiny BERT: the train
    tests check what it left, the serve tests serve its model."""
    tree = ml_tree(tmp_path_factory.mktemp("trained"), tiny_bert_base, epochs="10", logging_steps="20")
    name = f"textclf-test-train-{os.getpid()}"
    docker("rm", "--force", name, check=False)
    try:
        result = docker("run", "--name", name, "--network", "none", "--volume", f"{tree}:/opt/ml", image, "train",
                        timeout=600, check=False)  # fmt: skip
    finally:
        docker("rm", "--force", name, check=False)
    return TrainedTree(tree, result)


@pytest.fixture(scope="session")
def served_model(trained_tree) -> Path:
    """The model that `train` left in the container, readable by any container uid."""
    assert trained_tree.result.returncode == 0, trained_tree.output[-3000:]
    return open_to_any_user(trained_tree.base / "model")
