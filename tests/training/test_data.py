"""Reading channels: formats, compression, nesting, pairs, label kinds, bad rows and missing columns."""

import csv
import gzip
import json

import pytest
from textclf.errors import UserError
from textclf.training.data import learn_labels, read_channel, split_validation


def _read(directory, **columns):
    return read_channel(
        directory,
        columns.get("text", "text"),
        columns.get("label", "label"),
        columns.get("pair"),
        columns.get("max_length", 64),
    )


def test_every_format_gzipped_or_nested_is_read_and_other_files_ignored(tmp_path):
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    with open(tmp_path / "a.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["text", "label"], ["csv row, with comma", "x"]])
    (tmp_path / "b.tsv").write_text("text\tlabel\ntsv row\ty\n")
    (tmp_path / "nested" / "c.jsonl").write_text(json.dumps({"text": "jsonl row", "label": "x"}) + "\n\n")
    with gzip.open(tmp_path / "nested" / "deeper" / "d.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"text": "gzipped row", "label": "y"}) + "\n")
    (tmp_path / "e.json").write_text(json.dumps([{"text": "array row", "label": "y"}]))
    (tmp_path / ".hidden.csv").write_text("text,label\nhidden,z\n")
    (tmp_path / "notes.txt").write_text("ignored")
    data = _read(tmp_path)
    assert sorted(e.text for e in data.examples) == sorted(
        ["csv row, with comma", "tsv row", "jsonl row", "gzipped row", "array row"]
    )


def test_bad_rows_are_counted_not_fatal(tmp_path, caplog):
    rows = [
        {"text": "good", "label": "a"},
        {"text": "  ", "label": "a"},
        {"text": "no label", "label": None},
        {"text": "good too", "label": "b"},
        {"text": "empty label", "label": ""},
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = _read(tmp_path)
    assert [e.text for e in data.examples] == ["good", "good too"]
    assert data.skipped == {"empty text": 1, "missing label": 2}
    assert "skipped 3 rows" in caplog.text


def test_missing_column_lists_the_columns_found(tmp_path):
    (tmp_path / "d.csv").write_text("sentence,category\nhello,a\n")
    with pytest.raises(UserError) as error:
        _read(tmp_path)
    assert "no column 'text'" in error.value.cause and "'sentence', 'category'" in error.value.cause
    assert "text_column" in error.value.remedy


def test_columns_are_configurable_and_pairs_read_both_texts(tmp_path):
    (tmp_path / "d.csv").write_text("premise,hypothesis,gold\nA man runs,Someone moves,entailment\n")
    data = _read(tmp_path, text="premise", pair="hypothesis", label="gold")
    assert (data.examples[0].text, data.examples[0].text_pair, data.examples[0].label) == (
        "A man runs",
        "Someone moves",
        "entailment",
    )


def test_integer_labels_sort_numerically(tmp_path):
    rows = [{"text": f"t{label}", "label": label} for label in [10, 2, 1, 2.0]]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    labels = learn_labels(_read(tmp_path).examples, None)
    assert labels.names == ["1", "2", "10"] and not labels.multi_label


def test_list_labels_make_a_multi_label_task(tmp_path):
    (tmp_path / "d.jsonl").write_text(
        json.dumps({"text": "a", "label": ["x", "y"]}) + "\n" + json.dumps({"text": "b", "label": ["y"]}) + "\n"
    )
    (tmp_path / "e.csv").write_text('text,label\nc,"[""z""]"\n')
    labels = learn_labels(_read(tmp_path).examples, None)
    assert labels.multi_label and labels.names == ["x", "y", "z"]
    assert labels.encode(["x", "z"]) == [1.0, 0.0, 1.0]


def test_one_label_only_is_refused(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\na,same\nb,same\n")
    with pytest.raises(UserError) as error:
        learn_labels(_read(tmp_path).examples, None)
    assert "only one label ('same')" in error.value.cause


def test_validation_split_is_seeded_and_disjoint(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(50)))
    examples = _read(tmp_path).examples
    train, held = split_validation(examples, 0.2, seed=1)
    again_train, again_held = split_validation(examples, 0.2, seed=1)
    assert len(held) == 10 and len(train) == 40
    assert [e.text for e in held] == [e.text for e in again_held]
    assert not {e.text for e in held} & {e.text for e in train}


def _jsonl(directory, rows):
    (directory / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_numbers_and_their_spellings_merge_and_the_log_says_so(tmp_path, caplog):
    _jsonl(tmp_path, [{"text": "a", "label": 1}, {"text": "b", "label": 2}, {"text": "c", "label": "1"}])
    labels = learn_labels(_read(tmp_path).examples, None)
    assert labels.names == ["1", "2"]
    assert (
        "the labels 1 appear both as JSON numbers (first at d.jsonl line 1) and as strings (first at d.jsonl line 3)"
        in caplog.text
    )


def test_numbers_alone_merge_nothing_and_log_nothing(tmp_path, caplog):
    _jsonl(tmp_path, [{"text": "a", "label": 1}, {"text": "b", "label": 2.0}])
    assert learn_labels(_read(tmp_path).examples, None).names == ["1", "2"]
    assert "appear both" not in caplog.text


def test_booleans_alone_name_the_labels_true_and_false(tmp_path, caplog):
    caplog.set_level("INFO")
    _jsonl(tmp_path, [{"text": "a", "label": True}, {"text": "b", "label": False}])
    assert learn_labels(_read(tmp_path).examples, None).names == ["false", "true"]
    assert "the labels are true/false" in caplog.text


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (1.5, "d.jsonl line 2 has the label 1.5, a number with a fraction"),
        ({"name": "x"}, "d.jsonl line 2 has a label that is a JSON dict"),
        (True, "mixes true/false labels (d.jsonl line 2) with string labels (d.jsonl line 1)"),
    ],
)
def test_labels_that_name_no_class_are_refused(tmp_path, label, message):
    _jsonl(tmp_path, [{"text": "a", "label": "x"}, {"text": "b", "label": label}])
    with pytest.raises(UserError) as error:
        _read(tmp_path)
    assert message in error.value.cause
