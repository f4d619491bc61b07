"""`Estimator.fit` in local mode: what a user gets back, and the clear refusals."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
from sagemaker.estimator import Estimator
from sample_data import make_rows
from sdk_support import HYPERPARAMETERS, ROLE, file_uri, local_path, make_estimator, write_channel


def _members(archive) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {member.name.removeprefix("./"): member for member in tar.getmembers()}


def test_fit_with_train_validation_and_model_channels_leaves_a_deployable_model(trained):
    archive = local_path(trained.model_data)
    assert archive.name == "model.tar.gz"
    members = _members(archive)
    assert {"config.json", "model.safetensors", "tokenizer.json", "textclf.json"} <= set(members)
    with tarfile.open(archive) as tar:
        metadata = json.load(tar.extractfile(members["textclf.json"]))
    assert metadata["labels"] == ["finance", "sport", "tech", "weather"]
    assert metadata["metrics"]["validation"]["accuracy"] >= 0.8, metadata["metrics"]  # the validation channel
    output = archive.with_name("output.tar.gz")
    assert {"data/metrics.json", "data/confusion_matrix.png"} <= set(_members(output)), sorted(_members(output))


def test_the_model_archive_is_readable_by_any_user(trained):
    # Served as another uid (docker run --user, or a platform that unpacks as non-root) the weights must load.
    for name, member in _members(local_path(trained.model_data)).items():
        if member.isfile():
            assert member.mode & 0o444 == 0o444, f"{name} is {member.mode:04o} in model.tar.gz"


def test_fit_with_one_input_trains_on_it(image, sdk_session, base_model, tmp_path, capfd):
    # fit("file://...") names the only channel `training`. The base model rides along in a hidden directory
    # (hidden paths are not read as data), since one input leaves no room for a `model` channel.
    data = tmp_path / "data"
    write_channel(data, make_rows(160, seed=3))
    shutil.copytree(base_model, data / ".base-model")
    base = "/opt/ml/input/data/training/.base-model"
    estimator = make_estimator(image, sdk_session, tmp_path / "out", max_steps="5", model_name_or_path=base)
    estimator.fit(file_uri(data))
    output = capfd.readouterr().out
    assert local_path(estimator.model_data).is_file(), output[-3000:]
    assert "Training on the `training` channel" in output
    # The new head is reported in one plain line, not transformers' colour-coded table of MISSING weights.
    assert "new classification head for 4 labels" in output
    assert "LOAD REPORT" not in output


def test_script_mode_is_refused_with_the_reason(image, sdk_session, channels, tmp_path, capfd):
    # An entry_point makes the SDK pass sagemaker_program: this image cannot run it and must not silently ignore it.
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('my own training loop')\n")
    estimator = Estimator(
        image_uri=image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        entry_point="train.py",
        source_dir=str(code),
        hyperparameters=HYPERPARAMETERS,
        output_path=file_uri(tmp_path / "out"),
        sagemaker_session=sdk_session,
    )
    with pytest.raises(RuntimeError, match="exited with code"):
        estimator.fit(channels)
    output = capfd.readouterr().out
    assert "The job asks to run the script 'train.py' (sagemaker_program" in output
    assert "Use the generic Estimator with this image_uri and no entry_point" in output
    assert "my own training loop" not in output
    archives = list((tmp_path / "out").rglob("output.tar.gz"))
    assert len(archives) == 1
    with tarfile.open(archives[0]) as tar:
        failure = tar.extractfile(_members(archives[0])["failure"]).read().decode()
    assert "does not run scripts" in failure  # what SageMaker shows as the job's FailureReason
