"""Fixtures of the shipping suite: the AWS emulator (moto, on loopback) for every test, and for the push tests a
real OCI registry (Debian's docker-registry) and a Docker Engine, without which those tests skip, loudly."""

from __future__ import annotations

import sys

import pytest
from aws_standin import AwsStandIn
from registry_standin import Registry, free_port, push_tools_problem

_skipped_for: list[str] = []


@pytest.fixture(scope="session")
def _moto_server(tmp_path_factory):
    standin = AwsStandIn(free_port(), tmp_path_factory.mktemp("moto") / "requests.jsonl")
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture
def aws(_moto_server) -> AwsStandIn:
    """The emulator, emptied for this test, recording the requests it receives."""
    _moto_server.reset()
    return _moto_server


@pytest.fixture(scope="session")
def push_tools() -> None:
    """A Docker Engine to build and push with, and docker-registry to push to; the push tests skip without."""
    problem = push_tools_problem()
    if problem:
        message = f"PUSH TESTS SKIPPED: {problem}; pushing to a registry was NOT tested."
        print(f"\nWARNING: {message}", file=sys.__stderr__, flush=True)
        _skipped_for.append(message)
        pytest.skip(message)


@pytest.fixture
def registry(push_tools, tmp_path):
    """A fresh, empty registry on a free 127.0.0.1 port, asking for ECR's user and password."""
    (tmp_path / "registry").mkdir()
    started = Registry(tmp_path / "registry").start()
    yield started
    started.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    if _skipped_for:
        terminalreporter.section("shipping suite", sep="!", red=True, bold=True)
        terminalreporter.write_line(f"WARNING: {_skipped_for[0]}", red=True, bold=True)
