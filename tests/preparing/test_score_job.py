"""`prepare score`: offline batch scoring as a processing job, checked against a real `serve` of the same model."""

from __future__ import annotations

import gzip
import json

import pytest
from harness import Server, exit_message, make_processing_tree, run_prepare
from sample_data import SAMPLE_TEXTS


@pytest.fixture
def scored(tmp_path, bert_model_dir):
    texts = list(SAMPLE_TEXTS.values())
    csv_gz = gzip.compress(("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(texts))).encode())
    jsonl = "".join(json.dumps({"text": t, "source": "feed"}) + "\n" for t in texts[:2]) + '{"text": ""}\n'
    base = make_processing_tree(
        tmp_path / "ml",
        {"batch": {"day1/news.csv.gz": csv_gz, "feed.jsonl": jsonl}, "model": bert_model_dir},
    )
    result = run_prepare(base, "score")
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out = base / "processing" / "output" / "predictions" / "batch"
    read = {name: [json.loads(line) for line in (out / name).read_text().splitlines()]
            for name in ("day1/news.jsonl", "feed.jsonl")}  # fmt: skip
    return texts, read, result


def test_every_input_row_comes_back_with_its_prediction_beside_it(scored):
    texts, read, result = scored
    news, feed = read["day1/news.jsonl"], read["feed.jsonl"]
    assert [row["id"] for row in news] == ["0", "1", "2", "3"] and [row["text"] for row in news] == texts
    assert [row["source"] for row in feed[:2]] == ["feed", "feed"]
    # The empty row is kept, with the reason it has no prediction.
    assert feed[2] == {"text": "", "prediction": None, "error": "empty 'text' (or text pair)"}
    assert "Scored 7 rows of 2 file(s)" in result.stdout


def test_predictions_are_what_the_endpoint_answers(scored, bert_model_dir):
    texts, read, _ = scored
    server = Server(bert_model_dir).start()
    try:
        served = server.wait_ready().post({"inputs": texts}).json()
    finally:
        server.stop()
    batch = [row["prediction"] for row in read["day1/news.jsonl"]]
    assert [p["label"] for p in batch] == [p["label"] for p in served]
    assert [p["score"] for p in batch] == pytest.approx([p["score"] for p in served], abs=1e-5)


def test_scoring_without_a_model_says_what_to_add(tmp_path):
    base = make_processing_tree(tmp_path / "ml", {"batch": {"rows.jsonl": '{"text": "a"}\n'}})
    result = run_prepare(base, "score")
    assert result.returncode == 1
    assert exit_message(base).startswith("No model to score with")
