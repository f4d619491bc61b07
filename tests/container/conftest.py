"""Fixtures of the real-Docker suite: an answering Docker Engine, the image built from this checkout, containers
that are always removed, and models to mount.

With no Docker Engine the suite skips, loudly: a warning line at once, the reason on every skipped test, and a
banner in pytest's summary. It never passes without having run the image.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from docker_support import (
    Containers,
    TrainedTree,
    docker,
    engine_problem,
    image_under_test,
    ml_tree,
    open_to_any_user,
)

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
    """The image under test: $TEXTCLF_TEST_IMAGE, or built from this checkout."""
    return image_under_test()


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
