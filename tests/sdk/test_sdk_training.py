"""`Estimator.fit` in local mode: what a user gets back, with the built-in trainer and with a script of their own."""

from __future__ import annotations

import json
import shutil
import tarfile

from sagemaker.pytorch import PyTorch
from sample_data import make_rows
from script_mode_support import TRAIN_SCRIPT, source_dir
from sdk_support import ROLE, file_uri, local_path, make_estimator, write_channel


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


def test_a_pytorch_estimator_runs_a_script_mode_training_script(image, sdk_session, tmp_path, capfd):
    # What a team with its own script writes: a framework estimator given this image_uri, an entry_point and a
    # source_dir. The SDK passes sagemaker_program and mounts the source directory at /opt/ml/code.
    code = source_dir(tmp_path / "code", TRAIN_SCRIPT)
    train = write_channel(tmp_path / "train", make_rows(160, seed=5))
    estimator = PyTorch(
        entry_point="train.py",
        source_dir=str(code),
        image_uri=image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        framework_version="2.5",
        py_version="py311",
        hyperparameters={"epochs": 4, "label-column": "label"},
        output_path=file_uri(tmp_path / "out"),
        sagemaker_session=sdk_session,
    )
    estimator.fit({"train": train})
    output = capfd.readouterr().out
    archive = local_path(estimator.model_data)
    assert "model.json" in _members(archive), output[-3000:]
    with tarfile.open(archive) as tar:
        model = json.load(tar.extractfile(_members(archive)["model.json"]))
    assert model["rows"] == 160 and model["epochs"] == 4, model  # SM_CHANNEL_TRAIN and the hyperparameters
    assert model["labels"] == ["finance", "sport", "tech", "weather"]
    assert "trained on 160 rows" in output
