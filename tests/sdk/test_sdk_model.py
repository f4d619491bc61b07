"""The trained archive outside the estimator: a `Model` deployed from it, and the image serving it as another uid."""

from __future__ import annotations

import os

from docker_support import ARBITRARY_USER, Containers, ServingContainer, assert_predictions
from sagemaker.base_deserializers import JSONDeserializer
from sagemaker.base_serializers import JSONSerializer
from sagemaker.model import Model
from sagemaker.predictor import Predictor
from sample_data import SAMPLE_TEXTS
from sdk_support import ROLE, extract, local_path


def test_a_model_deployed_from_the_archive_predicts(image, trained, sdk_session):
    # Without predictor_cls, Model.deploy returns None.
    model = Model(image, trained.model_data, role=ROLE, predictor_cls=Predictor, sagemaker_session=sdk_session)
    predictor = model.deploy(
        initial_instance_count=1, instance_type="local", serializer=JSONSerializer(), deserializer=JSONDeserializer()
    )
    try:
        answers = predictor.predict({"inputs": list(SAMPLE_TEXTS.values())})
    finally:
        predictor.delete_endpoint()
    right = sum(answer["label"] == topic for answer, topic in zip(answers, SAMPLE_TEXTS, strict=True))
    assert right >= len(SAMPLE_TEXTS) - 1, answers


def test_the_archive_serves_as_an_arbitrary_uid(image, trained, tmp_path):
    # The README promises `docker run --user 12345:12345`: the unpacked files must be readable by that uid.
    model_dir = extract(local_path(trained.model_data), tmp_path / "model")
    model_dir.chmod(0o755)
    containers = Containers(os.getpid())
    try:
        server = ServingContainer(image, containers.name("sdk-serve-uid"), model_dir)
        server.start("--user", ARBITRARY_USER).wait_ready()
        assert_predictions(server.invoke(list(SAMPLE_TEXTS.values())), len(SAMPLE_TEXTS))
    finally:
        containers.remove_all()
