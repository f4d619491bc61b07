"""Content-type decoders, encoders and Accept negotiation, called directly (no server, no torch)."""

from __future__ import annotations

import json

import pytest
from textclf.errors import UserError
from textclf.serving import codecs
from textclf.serving.codecs import CSV, JSON, JSONLINES
from textclf.serving.errors import InvalidInput, MalformedBody, NotAcceptable, UnsupportedContentType
from textclf.serving.inputs import Parameters, TextInput
from textclf.serving.outputs import LabelSpace, activate, format_result

SUPPORTED = codecs.SUPPORTED_ACCEPT


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("text/csv", CSV),
        ("application/x-jsonlines", JSONLINES),
        ("text/*", CSV),
        ("text/html, application/jsonlines;q=0.5", JSONLINES),
        ("text/csv;q=0.2, application/json;q=0.8", JSON),
        ("application/json;q=0, text/csv", CSV),
        ("Text/CSV; charset=UTF-8", CSV),
    ],
)
def test_accept_picks_the_best_format_the_server_writes(accept, expected):
    assert codecs.negotiate(accept, JSON, SUPPORTED) == expected


@pytest.mark.parametrize("accept", ["text/html", "application/xml, image/*", "application/json;q=0"])
def test_negotiate_refuses_what_we_cannot_write(accept):
    with pytest.raises(NotAcceptable, match="application/json, application/jsonlines, text/csv"):
        codecs.negotiate(accept, JSON, SUPPORTED)


def test_no_preference_answers_in_the_request_format_unless_a_default_is_set():
    assert codecs.choose_accept(None, JSONLINES, None) == JSONLINES
    assert codecs.choose_accept("*/*", CSV, None) == CSV
    assert codecs.choose_accept(None, "text/plain", None) == JSON
    assert codecs.choose_accept(None, JSONLINES, CSV) == CSV
    assert codecs.choose_accept("application/json", CSV, CSV) == JSON


def test_default_accept_must_be_a_format_the_server_writes():
    codecs.check_default_accept("text/csv")
    codecs.check_default_accept(None)
    with pytest.raises(UserError, match="SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"):
        codecs.check_default_accept("text/plain")


def test_json_bodies_decode_to_inputs_and_parameters():
    request = codecs.decode(b'{"inputs": "one", "parameters": {"top_k": 2, "truncation": false}}', JSON)
    assert request.inputs == [TextInput("one")] and request.single
    assert request.parameters == [Parameters(top_k=2, top_k_given=True, truncation=False)]
    assert codecs.decode(b'["a", "b"]', JSON).inputs == [TextInput("a"), TextInput("b")]
    assert codecs.decode(b'"bare"', None).single  # no Content-Type: JSON
    pair = codecs.decode(b'{"inputs": [{"text": "q", "text_pair": "a"}]}', JSON, text_pair=True)
    assert pair.inputs == [TextInput("q", "a")] and not pair.single
    every = codecs.decode(b'{"inputs": "x", "parameters": {"top_k": null}}', JSON).parameters[0]
    assert every.top_k is None and every.top_k_given
    legacy = codecs.decode(b'{"inputs": "x", "parameters": {"return_all_scores": true}}', JSON).parameters[0]
    assert legacy.top_k is None and legacy.top_k_given
    assert codecs.decode('\ufeff"bom"'.encode(), "application/json; charset=utf-8").inputs == [TextInput("bom")]
    latin = codecs.decode('"café"'.encode("latin-1"), "application/json; charset=latin-1")
    assert latin.inputs == [TextInput("café")]


def test_jsonlines_lines_keep_their_parameters_and_order():
    body = b'{"inputs": "a"}\n\n"b"\n{"inputs": "c", "parameters": {"function_to_apply": "sigmoid"}}\n'
    request = codecs.decode(body, "application/jsonlines")
    assert [i.text for i in request.inputs] == ["a", "b", "c"]
    assert [p.function_to_apply for p in request.parameters] == [None, None, "sigmoid"]


def test_csv_reads_a_text_column_by_header_or_one_column_without():
    assert [i.text for i in codecs.decode(b'text,id\n"a, b",1\nc,2\n', CSV).inputs] == ["a, b", "c"]
    assert [i.text for i in codecs.decode(b"first\r\nsecond\r\n\r\n", CSV).inputs] == ["first", "second"]
    pairs = codecs.decode(b"text,text_pair\nq,a\n", CSV, text_pair=True).inputs
    assert pairs == [TextInput("q", "a")]
    assert codecs.decode(b"q,a\n", CSV, text_pair=True).inputs == [TextInput("q", "a")]
    with pytest.raises(InvalidInput, match="2 columns"):
        codecs.decode(b"q,a\n", CSV)


@pytest.mark.parametrize(
    ("body", "content_type", "text_pair", "words"),
    [
        (b'["a", {"text": "q", "text_pair": "a"}]', JSON, False, "Input 2 has a text_pair"),
        (b'{"inputs": ["q"]}', JSON, True, "Input 1 is a single text"),
        (b'{"inputs": {"text": "q", "text_pair": "a"}}\n{"inputs": "b"}\n', "application/jsonlines", True, "Input 2"),
        (b"q,a\nonly\n", CSV, True, "Input 2 is a single text"),
        (b"text,text_pair\nq,a\n", CSV, False, "trained on single texts"),
        (b"just one", "text/plain", True, "trained on text pairs"),
    ],
)
def test_pairs_must_match_how_the_model_was_trained(body, content_type, text_pair, words):
    with pytest.raises(InvalidInput, match=words):
        codecs.decode(body, content_type, text_pair=text_pair)


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"{", JSON, MalformedBody),
        (b"\xc3\x28", JSON, MalformedBody),
        (b"{}", JSON, InvalidInput),
        (b'{"inputs": "a", "extra": 1}', JSON, InvalidInput),
        (b'{"inputs": [["nested"]]}', JSON, InvalidInput),
        (b'{"inputs": "a", "parameters": []}', JSON, InvalidInput),
        (b'{"inputs": "a", "parameters": {"top_k": true}}', JSON, InvalidInput),
        (b"\n\n", JSONLINES, InvalidInput),
        (b"   ", "text/plain", InvalidInput),
        (b"x", "image/png", UnsupportedContentType),
        (b"\xff\xfe", "application/octet-stream", MalformedBody),
    ],
)
def test_undecodable_bodies_raise_the_error_of_their_kind(body, content_type, error):
    with pytest.raises(error):
        codecs.decode(body, content_type)


def test_answers_are_written_in_the_pipeline_shapes_one_row_or_line_per_input():
    one = {"label": "sport", "score": 0.9}
    two = [{"label": "sport", "score": 0.9}, {"label": "tech", "score": 0.1}]
    assert json.loads(codecs.encode([one], JSON, single=True)) == [one]
    assert json.loads(codecs.encode([two], JSON, single=True)) == two  # the pipeline flattens one string's top_k
    assert json.loads(codecs.encode([one, one], JSON, single=False)) == [one, one]
    # Lines between answers, none after the last: batch transform (AssembleWith=Line) adds one per answer.
    assert codecs.encode([one, two], JSONLINES, False).decode() == json.dumps(one) + "\n" + json.dumps(two)
    assert codecs.encode([one, two, []], CSV, False).decode() == "sport,0.9\nsport,0.9,tech,0.1\n"


def test_octet_stream_is_read_as_one_utf8_text():
    # The SageMaker Python SDK's default serializer sends `predictor.predict("a text")` this way.
    request = codecs.decode("Le match de rugby \u00e9t\u00e9".encode(), "application/octet-stream")
    assert request.inputs == [TextInput("Le match de rugby \u00e9t\u00e9")] and request.single


def test_scores_follow_function_top_k_and_the_saved_threshold():
    space = LabelSpace(("a", "b", "c"), multi_label=False, threshold=0.5)
    assert abs(sum(activate([1.0, 2.0, 3.0], "softmax")) - 1) < 1e-12
    assert activate([1000.0, -1000.0], "sigmoid") == [1.0, 0.0]  # no overflow
    assert format_result([0.1, 2.0, 0.3], space, Parameters())["label"] == "b"
    top2 = format_result([0.1, 2.0, 0.3], space, Parameters(top_k=2, top_k_given=True))
    assert [e["label"] for e in top2] == ["b", "c"]
    assert len(format_result([0.1, 2.0, 0.3], space, Parameters(top_k=9, top_k_given=True))) == 3
    raw = format_result([0.1, 2.0, 0.3], space, Parameters(function_to_apply="none"))
    assert raw == {"label": "b", "score": 2.0}
    multi = LabelSpace(("a", "b", "c"), multi_label=True, threshold=0.6)
    answer = format_result([0.0, 2.0, 0.5], multi, Parameters())  # sigmoid: 0.5, 0.88, 0.62
    assert [e["label"] for e in answer] == ["b", "c"]
    assert format_result([-3.0, -2.0, -5.0], multi, Parameters()) == []
