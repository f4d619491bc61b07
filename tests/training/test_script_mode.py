"""Script mode with `train` as a subprocess (not PID 1, so the subreaper is what keeps the user's script in reach):
the toolkit runs the job's own script, SIGTERM reaches it, and nothing of the job outlives `train`."""

from __future__ import annotations

import json
import os
import signal
import time

from harness import make_ml_tree, run_train, start_train
from sample_data import make_rows
from script_mode_support import SIGTERM_SCRIPT, TRAIN_SCRIPT, source_dir


def _tree(tmp_path, script, **hyperparameters):
    hyper = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": f'"{tmp_path}/code"', **hyperparameters}
    base = make_ml_tree(tmp_path, hyper, {"train": make_rows(80)})
    source_dir(base / "code", script)
    return base


def test_the_readme_script_trains_with_the_jobs_hyperparameters(tmp_path):
    base = _tree(tmp_path, TRAIN_SCRIPT, epochs="5")
    result = run_train(base)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    model = json.loads((base / "model" / "model.json").read_text())
    assert model["rows"] == 80 and model["epochs"] == 5, model
    assert "trained on 80 rows" in result.stdout
    # The toolkit's log goes to stdout; stderr is kept for the script, whose last lines explain a failure.
    assert "Invoking user script" in result.stdout and "Invoking user script" not in result.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_runs_the_scripts_handler_and_leaves_no_process_behind(tmp_path):
    base = _tree(tmp_path, SIGTERM_SCRIPT)
    process = start_train(base)
    deadline = time.monotonic() + 120
    for line in process.stdout:
        if "ready for SIGTERM" in line:
            break
        assert time.monotonic() < deadline
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)  # to `train` only, as SageMaker signals PID 1
    output = process.communicate(timeout=120)[0]
    checkpoint = base / "model" / "checkpoint.txt"
    assert checkpoint.exists(), f"the script's handler never ran:\n{output[-4000:]}"
    assert checkpoint.read_text().startswith("saved on SIGTERM")
    assert process.returncode == 143
    assert time.monotonic() - started < 30
    script_pid = int(checkpoint.read_text().rsplit(" ", 1)[1])
    assert not _alive(script_pid), "the user's script outlived train"
    assert (base / "output" / "failure").read_text().startswith("Stopped by SIGTERM")


OWN_REASON_SCRIPT = """\
import os, sys
with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as handle:
    handle.write("DataError: 12 rows have no label; fix the export")
sys.exit(1)
"""


def test_a_failure_reason_the_script_wrote_itself_is_kept(tmp_path):
    base = _tree(tmp_path, OWN_REASON_SCRIPT)
    result = run_train(base)
    assert result.returncode == 1
    assert (base / "output" / "failure").read_text() == "DataError: 12 rows have no label; fix the export"
