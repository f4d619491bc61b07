"""`Estimator.fit` with instance_count=2 in local mode: two containers (algo-1-xxxxx, algo-2-xxxxx) on the SDK's
`sagemaker-local` network train one model data-parallel, and the SDK gets one deployable model archive."""

from __future__ import annotations

import json
import tarfile

from sagemaker.estimator import Estimator
from sdk_support import HYPERPARAMETERS, ROLE, file_uri, local_path


def test_fit_on_two_instances_leaves_one_deployable_model(image, sdk_session, channels, tmp_path, capfd):
    estimator = Estimator(
        image_uri=image,
        role=ROLE,
        instance_count=2,
        instance_type="local",
        hyperparameters={**HYPERPARAMETERS, "epochs": "4"},
        output_path=file_uri(tmp_path / "out"),
        sagemaker_session=sdk_session,
    )
    estimator.fit(channels, wait=True, logs="All")
    output = capfd.readouterr().out
    assert "Data-parallel training: 2 workers on 2 host(s)" in output
    with tarfile.open(local_path(estimator.model_data)) as tar:
        names = {member.name.removeprefix("./") for member in tar.getmembers()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "textclf.json"} <= names
        metadata = json.load(tar.extractfile(tar.getmember("textclf.json")))
    assert metadata["labels"] == ["finance", "sport", "tech", "weather"]
    assert metadata["metrics"]["steps"] > 0 and not metadata["metrics"]["stopped"]
