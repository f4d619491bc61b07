"""`Estimator.deploy` in local mode and `predict` with each of the SDK's serializers, as the README shows them."""

from __future__ import annotations

import json

import pytest
from sagemaker.base_deserializers import CSVDeserializer, JSONDeserializer, JSONLinesDeserializer
from sagemaker.base_serializers import CSVSerializer, JSONLinesSerializer, JSONSerializer
from sagemaker.predictor import Predictor
from sample_data import SAMPLE_TEXTS, make_rows

ROWS = make_rows(12, seed=7)
TEXTS = [row["text"] for row in ROWS]
TOPICS = [row["label"] for row in ROWS]
LABELS = {"finance", "sport", "tech", "weather"}


@pytest.fixture(scope="module")
def endpoint(trained):
    """One local endpoint of the trained estimator for the whole module (one serving port per session)."""
    predictor = trained.deploy(initial_instance_count=1, instance_type="local")
    yield predictor
    predictor.delete_endpoint()


def _predictor(endpoint, **codecs) -> Predictor:
    return Predictor(endpoint.endpoint_name, sagemaker_session=endpoint.sagemaker_session, **codecs)


def _mostly_right(labels: list[str]) -> None:
    assert len(labels) == len(TEXTS) and set(labels) <= LABELS, labels
    right = sum(label == topic for label, topic in zip(labels, TOPICS, strict=True))
    assert right >= len(TEXTS) - 2, list(zip(labels, TOPICS, strict=True))


def test_json(endpoint):
    predictor = _predictor(endpoint, serializer=JSONSerializer(), deserializer=JSONDeserializer())
    answers = predictor.predict({"inputs": TEXTS, "parameters": {"top_k": 2}})
    assert all(len(answer) == 2 for answer in answers), answers
    _mostly_right([answer[0]["label"] for answer in answers])


def test_json_lines(endpoint):
    predictor = _predictor(endpoint, serializer=JSONLinesSerializer(), deserializer=JSONLinesDeserializer())
    answers = predictor.predict(TEXTS)
    _mostly_right([answer["label"] for answer in answers])


def test_csv_one_text_per_row_even_with_commas(endpoint):
    # The SDK's CSVSerializer passes a str through unquoted; one-element rows go through csv.writer, which quotes.
    predictor = _predictor(endpoint, serializer=CSVSerializer(), deserializer=CSVDeserializer())
    texts = [*TEXTS, "Stock market, bank shares, bond and dividend, says the investor."]
    rows = predictor.predict([[text] for text in texts])
    assert len(rows) == len(texts), rows  # unquoted, the last row would be read as 4 columns and refused (422)
    _mostly_right([row[0] for row in rows[: len(TEXTS)]])
    assert rows[-1][0] in LABELS and 0.0 <= float(rows[-1][1]) <= 1.0


def test_default_serializer_sends_a_text(endpoint):
    # deploy() without a serializer: the SDK sends the str as application/octet-stream and returns bytes.
    answer = _predictor(endpoint).predict(SAMPLE_TEXTS["sport"])
    assert isinstance(answer, bytes)
    assert [item["label"] for item in json.loads(answer)] == ["sport"], answer
