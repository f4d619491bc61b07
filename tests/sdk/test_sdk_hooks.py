"""A team's inference script deployed the SDK's way: `PyTorchModel(entry_point="inference.py", source_dir=...,
image_uri=...)` on the trained archive, in local mode with local code (no S3)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from sagemaker.base_deserializers import JSONDeserializer
from sagemaker.base_serializers import JSONSerializer
from sagemaker.pytorch import PyTorchModel
from sample_data import SAMPLE_TEXTS
from sdk_support import ROLE, file_uri, local_path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inference" / "inference.py"
LABELS = set(SAMPLE_TEXTS) | {"unsure"}


def test_a_pytorch_model_with_an_entry_point_serves_the_script(image, trained, sdk_session, tmp_path):
    # framework_version >= 1.2 makes the SDK repack the archive with the code under code/; with local code and a
    # file:// archive it rewrites the archive in place, so it gets a copy.
    archive = tmp_path / "model.tar.gz"
    shutil.copy(local_path(trained.model_data), archive)
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(EXAMPLE, source / "inference.py")
    model = PyTorchModel(
        model_data=file_uri(archive),
        entry_point="inference.py",
        source_dir=str(source),
        image_uri=image,
        role=ROLE,
        framework_version="2.1",
        py_version="py310",
        # Where the SDK would upload the code: with local code it uploads nothing, and naming a bucket keeps it from
        # asking AWS for the session's default bucket.
        code_location="s3://textclf-local-code-unused/code",
        sagemaker_session=sdk_session,
    )
    predictor = model.deploy(
        initial_instance_count=1, instance_type="local", serializer=JSONSerializer(), deserializer=JSONDeserializer()
    )
    try:
        answer = predictor.predict({"reviews": list(SAMPLE_TEXTS.values())})
    finally:
        predictor.delete_endpoint()
    answers = answer["answers"]
    assert len(answers) == len(SAMPLE_TEXTS) and all(a["label"] in LABELS for a in answers), answer
    with tarfile.open(archive) as tar:  # what a real endpoint would unpack: the script went into the archive
        assert "code/inference.py" in {name.lstrip("./") for name in tar.getnames()}
