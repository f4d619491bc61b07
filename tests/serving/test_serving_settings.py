"""TEXTCLF_* knobs, the process plan (workers, threads, GPUs) and the gunicorn hooks that bind GPUs."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from harness import REPO, SERVE
from textclf import environment
from textclf.contract import ServingEnvironment, serving_environment
from textclf.errors import UserError
from textclf.modeling import cpu_computes_bf16
from textclf.serving.settings import (
    MAX_CPU_RUNNERS,
    RUNNERS_ENV,
    ServingSettings,
    cpu_count,
    cpu_workers_memory_allows,
    gpu_count,
    load_settings,
    memory_available,
    plan_processes,
    visible_gpu_ids,
    weights_bytes,
    worker_runners,
)


def test_every_setting_is_listed_by_serve_help_and_the_readme_with_its_default():
    assert load_settings({}) == ServingSettings() and serving_environment({}) == ServingEnvironment()
    result = subprocess.run([sys.executable, str(SERVE), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    readme = (REPO / "README.md").read_text()
    for settings in (ServingEnvironment, ServingSettings):
        for name, default, meaning in environment.describe(settings):
            line = rf"\n  {name} +{re.escape(meaning)} \[default: {re.escape(default)}\]\n"
            assert meaning and re.search(line, result.stdout), name
            assert f"`{name}`" in readme, name


def test_knob_values_are_parsed_in_any_case():
    settings = load_settings(
        {
            "TEXTCLF_BATCHING": "off",
            "TEXTCLF_MAX_BATCH_SIZE": "8",
            "TEXTCLF_MAX_BATCH_TOKENS": "1024",
            "TEXTCLF_MAX_BATCH_DELAY_MS": "2.5",
            "TEXTCLF_TORCH_THREADS": "3",
            "TEXTCLF_DEVICE": "CPU",
            "TEXTCLF_DTYPE": "bfloat16",
        }
    )
    assert not settings.batching and settings.max_batch_size == 8 and settings.max_batch_tokens == 1024
    assert settings.max_batch_delay_ms == 2.5 and settings.torch_threads == 3
    assert settings.device == "cpu" and settings.dtype == "bfloat16"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TEXTCLF_MAX_BATCH_SIZE", "0"),
        ("TEXTCLF_MAX_BATCH_SIZE", "many"),
        ("TEXTCLF_MAX_BATCH_DELAY_MS", "-1"),
        ("TEXTCLF_BATCHING", "maybe"),
        ("TEXTCLF_DTYPE", "int4"),
    ],
)
def test_bad_values_name_the_knob(name, value):
    with pytest.raises(UserError, match=name):
        load_settings({name: value})


def test_cpu_plan_is_a_single_threaded_runner_per_core_in_as_few_workers_as_hold_them():
    def plan_of(cores, env=None, settings=None, memory_allows=None):
        env, settings = env or ServingEnvironment(), settings or ServingSettings()
        plan = plan_processes(env, settings, cores=cores, gpus=[], memory_allows=memory_allows)
        assert not plan.on_gpu
        return plan.workers, plan.runners, plan.torch_threads

    assert plan_of(1) == (1, 1, 1)
    assert plan_of(2) == (1, 2, 1)  # one queue for both cores
    assert plan_of(4) == (1, MAX_CPU_RUNNERS, 1)
    assert plan_of(8) == (2, 4, 1)
    assert plan_of(10) == (3, 3, 1)  # never more runners than cores
    assert plan_of(16, memory_allows=2) == (2, 8, 1)  # fewer copies of the model: more runners each
    assert plan_of(8, env=ServingEnvironment(workers=3)) == (3, 2, 1)  # the cores shared out as runners
    assert plan_of(2, env=ServingEnvironment(workers=4)) == (4, 1, 1)
    assert plan_of(8, settings=ServingSettings(torch_threads=2)) == (1, 4, 2)
    assert plan_of(2, env=ServingEnvironment(workers=1), settings=ServingSettings(torch_threads=2)) == (1, 1, 2)


def test_workers_learn_their_runner_count_from_the_master():
    assert worker_runners({}) == 1
    assert worker_runners({RUNNERS_ENV: "3"}) == 3


def test_gpu_plan_is_one_worker_per_device():
    plan = plan_processes(ServingEnvironment(), ServingSettings(), cores=16, gpus=["0", "1", "2", "3"])
    assert plan.workers == 4 and plan.devices == ("0", "1", "2", "3") and plan.torch_threads == 4
    assert plan.runners == 1
    forced_cpu = plan_processes(ServingEnvironment(), ServingSettings(device="cpu"), cores=16, gpus=["0"])
    assert not forced_cpu.on_gpu and forced_cpu.workers * forced_cpu.runners == 16
    with pytest.raises(UserError, match="no GPU"):
        plan_processes(ServingEnvironment(), ServingSettings(device="cuda"), cores=4, gpus=[])
    with pytest.raises(UserError, match="TEXTCLF_DTYPE=int8 runs on CPU only"):
        plan_processes(ServingEnvironment(), ServingSettings(dtype="int8"), cores=16, gpus=["0"])
    int8_on_cpu = plan_processes(ServingEnvironment(), ServingSettings(dtype="int8", device="cpu"), cores=4, gpus=["0"])
    assert not int8_on_cpu.on_gpu and int8_on_cpu.workers * int8_on_cpu.runners == 4


def test_gpus_are_counted_without_torch():
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "2,5"}) == 2
    assert gpu_count({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "2, 5"}) == ["2", "5"]
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "-1"}) == 0


def test_serving_environment_reads_the_default_accept():
    assert serving_environment({}).default_accept is None
    assert serving_environment({"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}).default_accept == "text/csv"


def test_gunicorn_hooks_bind_each_worker_to_its_own_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_TIMEOUT", "42")
    monkeypatch.setenv("TEXTCLF_RUN_DIR", str(tmp_path))
    sys.modules.pop("textclf.serving.gunicorn_conf", None)
    conf = importlib.import_module("textclf.serving.gunicorn_conf")
    try:
        assert conf.workers == 2 and conf.worker_class == "gthread" and conf.timeout == 42
        assert conf.preload_app is False and conf.graceful_timeout < 30
        server = SimpleNamespace(WORKERS={}, num_workers=2)
        first, second, third = (SimpleNamespace(pid=pid) for pid in (101, 102, 103))
        conf.pre_fork(server, first)
        server.WORKERS[101] = first
        conf.pre_fork(server, second)
        server.WORKERS[102] = second
        assert (first.textclf_slot, second.textclf_slot) == (0, 1)
        conf.post_fork(server, second)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
        del server.WORKERS[101]  # the first worker died: its replacement takes its GPU
        conf.pre_fork(server, third)
        conf.post_fork(server, third)
        assert third.textclf_slot == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    finally:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM"):
            monkeypatch.delenv(name, raising=False)
        sys.modules.pop("textclf.serving.gunicorn_conf", None)


def test_workers_that_fit_in_memory_count_each_copy_of_the_weights(tmp_path):
    gib = 1 << 30
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
    (tmp_path / "config.json").write_text("{}")  # not weights
    assert weights_bytes(tmp_path) == 4096
    assert cpu_workers_memory_allows(16 * gib, gib // 2) == 8  # 12 GiB usable, 1.5 GiB a worker
    assert cpu_workers_memory_allows(gib, 4 * gib) == 1  # never fewer than one
    assert cpu_workers_memory_allows(None, gib) is None  # unknown: the cores decide
    assert memory_available() is None or memory_available() > 0


def test_a_default_server_runs_a_runner_per_core_in_the_precision_this_cpu_computes_fastest(bert_server):
    # bert_server leaves workers, threads and dtype at their defaults.
    log = bert_server.log
    cores = cpu_count()
    plan = re.search(
        rf"process plan: (\d+) workers x \d+ request threads and (\d+) runner threads of (\d+) torch threads, "
        rf"{cores} CPU",
        log,
    )
    workers, runners, threads = (int(n) for n in plan.groups())
    assert (workers, runners, threads) == (-(-cores // MAX_CPU_RUNNERS), cores // workers, 1), log[-2000:]
    assert len(bert_server.workers()) == workers
    expected = "bfloat16" if cpu_computes_bf16() else "float32"
    assert log.count(f"on cpu as {expected}") == workers, log[-2000:]
    # torch is imported once, by the master, before the workers exist: each still runs the plan's thread count
    assert log.count(f"{threads} torch threads, pid") == workers, log[-2000:]
    assert log.count(f"tokens per request, {runners} runner threads") == workers, log[-2000:]
    # Where auto falls back to float32, each worker says what int8 would offer and how to check it for this model
    # (bert_model_dir was trained without evaluate_int8); where bfloat16 is native there is nothing to advise.
    advice = "precision: float32, as TEXTCLF_DTYPE=auto chooses on a CPU without bfloat16 instructions"
    assert log.count(advice) == (0 if cpu_computes_bf16() else workers), log[-2000:]
    assert cpu_computes_bf16() or "train with evaluate_int8=true" in log
