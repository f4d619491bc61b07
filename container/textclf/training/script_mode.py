"""Script mode: the job names its own training program, and the SageMaker training toolkit runs it.

The toolkit fetches the source directory, installs its requirements.txt, exports the SM_* variables and runs the
program with the hyperparameters as arguments (toolkit_entry.py). Around it, `train` adds what the toolkit lacks:

- SIGTERM reaches the user's program. The toolkit does not forward it (aws/sagemaker-training-toolkit#125): its
  process dies and the program, orphaned, never runs its handler. Here the toolkit runs in a process group of its
  own, SIGTERM goes to that whole group, and `train` (a child subreaper, PID 1 in the container) waits for every
  descendant, killing what is left after STOP_GRACE_SECONDS, inside SageMaker's 120 s.
- A failure says why: the program's exit code and the last lines of its stderr (or pip's) in the failure file.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..contract import FAILURE_MESSAGE_LIMIT, MLPaths
from ..errors import UserError

log = logging.getLogger("textclf.train")

# SageMaker kills the container 120 s after SIGTERM; this leaves time to report after killing what is left.
STOP_GRACE_SECONDS = 90
# A program that ends normally may leave processes behind (a data loader, a server): they get this long.
LEFTOVER_GRACE_SECONDS = 10
STDERR_TAIL_BYTES = 16 * 1024
POLL_SECONDS = 0.1
PR_SET_CHILD_SUBREAPER = 36
ENTRY = Path(__file__).with_name("toolkit_entry.py")
# How the toolkit's own failure reports begin: a failed command (ExecuteUserScriptError, InstallRequirementsError,
# ...: class, then its exit code) or an exception of its own.
TOOLKIT_REPORT = re.compile(r"^(\w+:\s*\nExitCode |Framework Error|SMTrainingCompiler)")


def become_subreaper() -> None:
    """Orphaned descendants (the user's program once the toolkit has died) become our children, so we can wait
    for them; in the container we are PID 1 and they are ours anyway."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("Could not become a child subreaper; orphaned processes may outlive the job's end.")


def _children() -> list[int]:
    """Our own children, whatever their process group (a program may start a session of its own)."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after its last ')'.
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == me:
            found.append(int(entry.name))
    return found


class _Tail:
    """Copies a stream to our stderr as it comes and keeps its last bytes."""

    def __init__(self, stream) -> None:
        self.kept: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream) -> None:
        out = sys.stderr.buffer
        while chunk := os.read(stream.fileno(), 65536):
            out.write(chunk)
            out.flush()
            self.kept.append(chunk)
            self.size += len(chunk)
            while self.size - len(self.kept[0]) >= STDERR_TAIL_BYTES:
                self.size -= len(self.kept.popleft())

    def text(self) -> str:
        self.thread.join(timeout=5)
        return b"".join(self.kept).decode("utf-8", "replace")


class _Job:
    """The toolkit's process group and every descendant `train` has adopted."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.kill_at: float | None = None  # set once the processes have been told to stop
        self.stopped = False  # SIGTERM came from outside
        self.killed = False

    def start(self) -> _Tail:
        self.process = subprocess.Popen([sys.executable, str(ENTRY)], stderr=subprocess.PIPE, start_new_session=True)
        if self.kill_at is not None:  # SIGTERM came while it was starting
            self._signal_all(signal.SIGTERM)
        return _Tail(self.process.stderr)

    def _signal_all(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass
        for pid in _children():  # adopted ones that left the group
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def terminate(self, grace: float) -> None:
        if self.kill_at is None:
            self.kill_at = time.monotonic() + grace
            if self.process is not None:
                self._signal_all(signal.SIGTERM)

    def on_sigterm(self, signum, _frame) -> None:
        log.warning("%s received: passing it on to the training script.", signal.Signals(signum).name)
        self.stopped = True
        self.terminate(STOP_GRACE_SECONDS)

    def wait(self) -> int:
        """Until no descendant is left; the toolkit's exit status."""
        status = None
        while True:
            try:
                while True:
                    pid, raw = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        break
                    if pid == self.process.pid:
                        status = os.waitstatus_to_exitcode(raw)
                        self.process.returncode = status
            except ChildProcessError:
                return status
            if status is not None:
                self.terminate(LEFTOVER_GRACE_SECONDS)
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                self.killed = True
                self._signal_all(signal.SIGKILL)
            time.sleep(POLL_SECONDS)


def run(paths: MLPaths, program: str, write_failure) -> int:
    """Runs the job's own program through the toolkit; `train`'s exit code."""
    from .cli import EXIT_FAILED, EXIT_STOPPED

    _require_config(paths)
    # SageMaker makes these; a hand-made tree may not. Without output/, the toolkit's failure report itself fails
    # and a failed script exits 0 (its `finally: sys.exit(exit_code)` swallows the error).
    for directory in (paths.model_dir, paths.output_data_dir):
        directory.mkdir(parents=True, exist_ok=True)
    log.info("Script mode: running %s with the SageMaker training toolkit.", program)
    become_subreaper()
    job = _Job()
    signal.signal(signal.SIGTERM, job.on_sigterm)
    signal.signal(signal.SIGINT, job.on_sigterm)
    tail = job.start()
    status = job.wait()
    stderr = tail.text()
    if job.stopped:
        if job.killed:
            ending = (
                f"was still running {STOP_GRACE_SECONDS} s later, so it was killed (SageMaker's SIGKILL comes at "
                "120 s). Save a checkpoint sooner after SIGTERM."
            )
        else:
            ending = "ended. What it saved on the signal (a checkpoint, a model) is in place."
        write_failure(paths, f"Stopped by SIGTERM: the training script {program} was sent SIGTERM and {ending}")
        return EXIT_STOPPED
    if status == 0:
        paths.failure_file.unlink(missing_ok=True)
        return 0
    toolkit_said = paths.failure_file.read_text(errors="replace") if paths.failure_file.exists() else ""
    if toolkit_said.strip() and not TOOLKIT_REPORT.match(toolkit_said):
        # A reason the script wrote itself (the toolkit keeps it: aws/sagemaker-training-toolkit#111), or one of
        # the toolkit's plain-text refusals: either says more than we could.
        return EXIT_FAILED
    write_failure(paths, failure_reason(program, paths.base / "code", status, toolkit_said, stderr))
    return EXIT_FAILED


def _require_config(paths: MLPaths) -> None:
    """The toolkit reads all three config files and fails on a missing one with a bare traceback; SageMaker
    always writes them, a hand-made tree may not."""
    files = (paths.hyperparameters_file, paths.input_data_config_file, paths.resource_config_file)
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise UserError(
            f"Script mode reads {', '.join(path.name for path in files)}; missing: {', '.join(missing)}.",
            'Write them as SageMaker does: {} for no hyperparameters, {"train": {}} to declare a `train` channel, '
            '{"current_host": "algo-1", "hosts": ["algo-1"]} for one host (README: "Training script").',
        )


def failure_reason(program: str, code_dir: Path, status: int, toolkit_said: str, stderr: str) -> str:
    """What went wrong, from the toolkit's failure file (the error class and the exit code of the command that
    failed) and the stderr tail, within FAILURE_MESSAGE_LIMIT."""
    kind = toolkit_said.split(":", 1)[0].strip()
    exit_code = re.search(r"^ExitCode (-?\d+)", toolkit_said, re.MULTILINE)
    code = exit_code.group(1) if exit_code else str(status)
    if kind == "ExecuteUserScriptError":
        head = f"The training script {program} failed with exit code {code}."
        source = "its stderr"
    elif kind == "InstallRequirementsError":
        head = (
            f"pip could not install {code_dir / 'requirements.txt'} (exit code {code}). Without network access, "
            "ship the wheels in the source directory: `pip download -d wheels -r requirements.txt` beside it."
        )
        source = "pip's output"
    else:
        last = [line for line in toolkit_said.strip().splitlines() if line.strip()][-1:] or ["no reason given"]
        head = f"The training toolkit failed running {program} (exit code {code}): {last[0].strip()[:300]}"
        source = "stderr"
    return head + _tail_within(stderr, f" Last lines of {source}:\n", FAILURE_MESSAGE_LIMIT - len(head))


def _tail_within(stderr: str, label: str, budget: int) -> str:
    """The last whole lines of stderr that fit in budget characters with their label ("" when none do)."""
    lines = [line.rstrip() for line in stderr.strip().splitlines() if line.strip()]
    kept: list[str] = []
    room = budget - len(label)
    while lines and len(lines[-1]) + 1 <= room:
        room -= len(lines[-1]) + 1
        kept.insert(0, lines.pop())
    if not kept and lines and room > 20:  # one long line: its end
        kept = ["..." + lines[-1][-(room - 4) :]]
    return label + "\n".join(kept) if kept else ""
