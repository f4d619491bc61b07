"""The launch of a data-parallel job: one worker per GPU (one on CPU) on every host, through torchrun.

SageMaker runs the same `train` on every host with its own resourceconfig.json. Each `train` becomes the launcher
of its host: it runs PyTorch's elastic launcher (torch.distributed.run) in-process with a static rendezvous on
the first host of the sorted host list (node rank = the host's place in it) and a fixed port, so that the
launchers find each other with nothing but that file. The workers are `train` again, with LAUNCH_DIR_ENV set.
torchrun forwards SIGTERM to the workers and stops the others when one dies; each worker leaves its outcome in
the launch directory, from which the launcher writes its host's failure file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..contract import Channel, MLPaths, ResourceConfig
from ..environment import variable, whole_number
from ..errors import UserError

log = logging.getLogger(__name__)

# Set by the launcher for the workers it starts: a directory where each rank leaves its outcome (rank-N.json).
LAUNCH_DIR_ENV = "TEXTCLF_LAUNCH_DIR"


@dataclass(frozen=True)
class DistributedSettings:
    """Knobs of multi-GPU and multi-host training (TEXTCLF_*); `train --help` and the README list them."""

    workers_per_host: int | None = variable(
        "TEXTCLF_WORKERS_PER_HOST", None, "training processes per host", whole_number(auto="auto"),
        "auto: one per visible GPU, one on CPU",
    )  # fmt: skip
    master_port: int = variable(
        "TEXTCLF_MASTER_PORT", 29500, "TCP port on the first host where the hosts meet (multi-host jobs)",
        whole_number(minimum=1024),
    )  # fmt: skip
    rendezvous_timeout_s: int = variable(
        "TEXTCLF_RENDEZVOUS_TIMEOUT_S", 120, "seconds a host waits to reach the first host (and it, the others)",
        whole_number(minimum=5),
    )  # fmt: skip
    collective_timeout_s: int = variable(
        "TEXTCLF_COLLECTIVE_TIMEOUT_S", 60, "seconds a worker waits for the others in a gradient exchange",
        whole_number(minimum=10),
    )  # fmt: skip


def is_worker() -> bool:
    return bool(os.environ.get(LAUNCH_DIR_ENV))


# How a worker ended, as it tells its launcher (the launcher then writes its host's one failure file).
STOPPED, FAILED, LOST_PEER = "stopped", "failed", "lost_peer"


def report_outcome(kind: str, message: str) -> None:
    """Leave this rank's outcome for the launcher of its host, which writes the host's failure file."""
    directory = Path(os.environ[LAUNCH_DIR_ENV])
    rank = int(os.environ.get("RANK", "0"))
    record = {"rank": rank, "host": socket.gethostname(), "kind": kind, "message": message, "time": time.time()}
    temp = directory / f".rank-{rank}.json"
    temp.write_text(json.dumps(record))
    os.replace(temp, directory / f"rank-{rank}.json")


def read_outcomes(directory: Path) -> dict[int, dict]:
    outcomes = {}
    for path in directory.glob("rank-*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        outcomes[record["rank"]] = record
    return outcomes


PROGRAM = Path(__file__).resolve().parents[3] / "train"  # the `train` executable, which the workers run again
# SageMaker sends SIGKILL 120 s after SIGTERM: the workers get this long to checkpoint and write the model.
SHUTDOWN_GRACE_S = 100


@dataclass(frozen=True)
class LaunchPlan:
    hosts: tuple[str, ...]
    node_rank: int
    workers_per_host: int
    gpus: bool
    master_addr: str
    master_port: int
    interface: str

    @property
    def world_size(self) -> int:
        return len(self.hosts) * self.workers_per_host

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def current_host(self) -> str:
        return self.hosts[self.node_rank]

    def describe(self) -> str:
        where = f"{len(self.hosts)} host(s) ({', '.join(self.hosts)})"
        kind = "GPU" if self.gpus else "CPU"
        return (
            f"Data-parallel training: {self.world_size} workers on {where}, {self.workers_per_host} {kind} worker(s) "
            f"per host; this is {self.current_host} (node rank {self.node_rank}); rendezvous at "
            f"{self.master_addr}:{self.master_port}."
        )


def plan_launch(resources: ResourceConfig, settings: DistributedSettings, gpu_count: int) -> LaunchPlan:
    hosts = tuple(sorted(resources.hosts))
    if resources.current_host not in hosts:
        raise UserError(
            f"resourceconfig.json names current_host {resources.current_host!r}, which is not in its hosts "
            f"{list(hosts)}.",
            "Give every host a resourceconfig.json whose current_host is one of its hosts (SageMaker does).",
        )
    workers = settings.workers_per_host or max(gpu_count, 1)
    if gpu_count and workers > gpu_count:
        raise UserError(
            f"TEXTCLF_WORKERS_PER_HOST={workers}, but this host has {gpu_count} GPU(s).",
            f"Set it to {gpu_count} or fewer, or leave it unset (one worker per GPU).",
        )
    single_host = len(hosts) == 1
    return LaunchPlan(
        hosts=hosts,
        node_rank=hosts.index(resources.current_host),
        workers_per_host=workers,
        gpus=gpu_count > 0,
        # One host: loopback and any free port; several: the first host and the fixed port that all of them know.
        master_addr="127.0.0.1" if single_host else hosts[0],
        master_port=_free_port() if single_host else settings.master_port,
        interface="lo" if single_host else resources.network_interface_name,
    )


def refuse_sharded_channels(plan: LaunchPlan, channels: dict[str, Channel]) -> None:
    """Every worker reads all the data and takes its share of each step itself: a host with only part of the
    files would learn other labels and plan other steps than the rest."""
    sharded = sorted(name for name, channel in channels.items() if channel.sharded)
    if sharded and len(plan.hosts) > 1:
        raise UserError(
            f"Channel(s) {', '.join(sharded)} use S3DistributionType ShardedByS3Key, so each of the "
            f"{len(plan.hosts)} hosts got only part of the files; data-parallel training needs all of them on every "
            "host (each worker takes its own share of every step).",
            "Set the channels' S3DataDistributionType to FullyReplicated (the default).",
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_arguments(plan: LaunchPlan, settings: DistributedSettings) -> list[str]:
    return [
        f"--nnodes={len(plan.hosts)}",
        f"--nproc-per-node={plan.workers_per_host}",
        f"--node-rank={plan.node_rank}",
        f"--master-addr={plan.master_addr}",
        f"--master-port={plan.master_port}",
        "--rdzv-backend=static",
        f"--rdzv-conf=timeout={settings.rendezvous_timeout_s}",
        "--max-restarts=0",  # a failed worker fails the job: a restart would not find the others waiting
        "--monitor-interval=1",
        f"--shutdown-timeout={SHUTDOWN_GRACE_S}",
        str(PROGRAM),
    ]


def socket_environment(plan: LaunchPlan, environ: dict[str, str]) -> dict[str, str]:
    """GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME from resourceconfig.json's interface, unless the user set them."""
    names = ["GLOO_SOCKET_IFNAME"] + (["NCCL_SOCKET_IFNAME"] if len(plan.hosts) > 1 else [])
    return {name: plan.interface for name in names if not environ.get(name)}


def wait_for_first_host(plan: LaunchPlan, timeout_s: float) -> None:
    """A host other than the first checks that it can reach the first host's port, to fail with a clear message
    rather than torch's: DNS names of the other hosts may take a while to resolve at the start of a job."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((plan.master_addr, plan.master_port), timeout=5):
                return
        except OSError as exc:
            last_error = exc
            time.sleep(1)
    raise UserError(
        f"Host {plan.current_host} could not reach the first host {plan.master_addr} on TCP port "
        f"{plan.master_port} (network interface {plan.interface}) within {timeout_s:.0f} s: {last_error}.",
        "The hosts of a job must reach each other on that port: check the job's VPC security group (it must allow "
        "all traffic between its own members), or set TEXTCLF_MASTER_PORT to a port that is open.",
    )


def launch(paths: MLPaths, plan: LaunchPlan, settings: DistributedSettings) -> tuple[int, str | None]:
    """Run this host's workers to the end: (exit code, failure message or None)."""
    from torch.distributed.run import get_args_parser

    # Until torchrun's own handlers replace this one (when the workers start), SIGTERM ends the wait at once.
    def stop_while_waiting(signum, _frame):
        message = "Stopped by SIGTERM while the hosts were meeting; nothing was trained on this host."
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(message + "\n", encoding="utf-8")
        print(message, flush=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop_while_waiting)
    signal.signal(signal.SIGINT, stop_while_waiting)
    log.info(plan.describe())
    if plan.node_rank > 0:
        wait_for_first_host(plan, settings.rendezvous_timeout_s)
    launch_dir = Path(tempfile.mkdtemp(prefix="textclf-launch-"))
    os.environ.update(socket_environment(plan, dict(os.environ)))
    os.environ[LAUNCH_DIR_ENV] = str(launch_dir)
    args = get_args_parser().parse_args(torchrun_arguments(plan, settings))
    try:
        return _run_workers(plan, settings, args, launch_dir)
    finally:
        del os.environ[LAUNCH_DIR_ENV]  # for the workers only: this process is the launcher
        shutil.rmtree(launch_dir, ignore_errors=True)
        # torchrun's handlers raise on SIGTERM; with the workers gone there is nothing left to stop, and the SDK's
        # local mode stops every container once one has exited.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _run_workers(plan: LaunchPlan, settings: DistributedSettings, args, launch_dir: Path) -> tuple[int, str | None]:
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import run

    try:
        run(args)
        return 0, None
    except SignalException as exc:
        log.warning("%s received: the workers checkpoint and stop.", signal.Signals(exc.sigval).name)
        return choose_outcome(plan, read_outcomes(launch_dir), {}, signalled=True)
    except ChildFailedError as exc:
        return choose_outcome(plan, read_outcomes(launch_dir), exc.failures, signalled=False)
    except Exception as exc:  # the rendezvous itself: a host that never came
        if "timeout" in str(exc).lower() or "timed out" in str(exc).lower():
            raise UserError(
                f"Host {plan.current_host}: not every host of {list(plan.hosts)} joined at {plan.master_addr}:"
                f"{plan.master_port} (interface {plan.interface}) within {settings.rendezvous_timeout_s} s ({exc}).",
                "Check that every host started and that they reach each other on that port (the job's VPC "
                "security group must allow traffic between its own members); the other hosts' logs say more.",
            ) from exc
        raise


def choose_outcome(plan: LaunchPlan, outcomes: dict[int, dict], failures: dict, signalled: bool) -> tuple[int, str]:
    """The host's exit code and failure message: a worker's own failure first (the earliest), then a worker that
    died without a word (killed), then a lost peer (the cause is on another host), then a stop."""
    by_time = sorted(outcomes.values(), key=lambda record: record["time"])
    own = [record for record in by_time if record["kind"] == FAILED]
    if own:
        return 1, _name_rank(own[0])
    silent = {rank: failure for rank, failure in failures.items() if rank not in outcomes}
    if silent and not signalled:
        rank, failure = min(silent.items(), key=lambda item: item[1].timestamp)
        how = (
            f"was killed by signal {-failure.exitcode} ({failure.signal_name()})"
            if failure.exitcode < 0
            else f"exited with code {failure.exitcode}"
        )
        return 1, (
            f"Worker rank {rank} (local rank {failure.local_rank}) on host {plan.current_host} {how} without "
            "saying why. SIGKILL usually means the host ran out of memory: lower per_device_batch_size or "
            "max_length, or use an instance with more memory."
        )
    lost = [record for record in by_time if record["kind"] == LOST_PEER]
    if lost and not signalled and not any(record["kind"] == STOPPED for record in by_time):
        return 1, _name_rank(lost[0])
    stopped = [record for record in by_time if record["kind"] == STOPPED]
    main = next((record for record in stopped if record["rank"] == 0), stopped[0] if stopped else None)
    if main is not None:
        return 143, main["message"]
    if lost:
        return 1, _name_rank(lost[0])
    return 143, f"Stopped by SIGTERM; the workers on {plan.current_host} ended before reporting."


def _name_rank(record: dict) -> str:
    return f"Worker rank {record['rank']} on {record['host']}: {record['message']}"
