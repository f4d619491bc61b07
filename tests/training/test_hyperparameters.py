"""Hyperparameters: every client spelling parses, reserved keys are ignored, mistakes are named precisely."""

import json

import pytest
from textclf.contract import MLPaths, read_hyperparameters
from textclf.errors import UserError
from textclf.training.hyperparameters import Hyperparameters, describe, parse


def _from_file(tmp_path, raw: dict) -> Hyperparameters:
    paths = MLPaths(tmp_path)
    paths.input_config.mkdir(parents=True)
    paths.hyperparameters_file.write_text(json.dumps(raw))
    return parse(read_hyperparameters(paths))


def test_every_sagemaker_spelling_parses(tmp_path):
    params = _from_file(
        tmp_path,
        {
            "epochs": "3",
            "learning_rate": "2e-05",
            "multi_label": "True",
            "model_name_or_path": '"bert-base-uncased"',  # JSON-quoted by the SDK's script mode
            "per_device_batch_size": "16.0",
            "early_stopping_patience": "null",
            "lr_scheduler": '"cosine"',
            "sagemaker_container_log_level": "20",  # the SDK's own keys are not ours to read
            "sagemaker_region": '"us-east-1"',
            "_tuning_objective_metric": "eval_macro_f1",
        },
    )
    assert params.epochs == 3.0
    assert params.learning_rate == pytest.approx(2e-5)
    assert params.multi_label is True
    assert params.model_name_or_path == "bert-base-uncased"
    assert params.per_device_batch_size == 16
    assert params.early_stopping_patience is None
    assert params.lr_scheduler == "cosine"


def test_non_string_json_values_from_a_hand_written_file(tmp_path):
    params = _from_file(tmp_path, {"epochs": 2, "multi_label": False, "warmup_ratio": 0.1})
    assert (params.epochs, params.multi_label, params.warmup_ratio) == (2.0, False, 0.1)


def test_defaults_are_the_documented_ones():
    params = parse({})
    assert params.text_column == "text" and params.label_column == "label" and params.text_pair_column is None
    assert params.epochs == 3 and params.max_steps is None
    assert params.weight_decay == 0.01 and params.warmup_ratio == 0.06 and params.lr_scheduler == "linear"
    assert params.per_device_batch_size == 32 and params.gradient_accumulation_steps == 1
    assert params.max_length == 256 and params.metric_for_best_model == "macro_f1"
    assert params.validation_split == 0.1 and params.seed == 42 and params.precision == "auto"
    assert params.checkpoint_steps == 500 and params.eval_steps is None and params.multi_label is None


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserError) as error:
        parse({"learning_rat": "0.1"})
    assert "Unknown hyperparameter 'learning_rat'" in error.value.cause
    assert "Did you mean 'learning_rate'?" in error.value.cause


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("epochs", "three", "is not a number"),
        ("per_device_batch_size", "2.5", "is not an integer"),
        ("multi_label", "maybe", "is not true or false"),
        ("per_device_batch_size", "0", "below its minimum of 1"),
        ("learning_rate", "nan", "is not a number"),
    ],
)
def test_bad_value_names_key_and_expected_type(key, value, expected):
    with pytest.raises(UserError) as error:
        parse({key: value})
    assert f"'{key}'" in error.value.cause and expected in error.value.cause


def test_choice_suggests_the_closest():
    with pytest.raises(UserError) as error:
        parse({"lr_scheduler": "cosin"})
    assert "Did you mean 'cosine'?" in error.value.cause
    assert "linear" in error.value.remedy


def test_every_hyperparameter_is_documented():
    rows = describe()
    assert {name for name, _, _ in rows} == set(Hyperparameters.__dataclass_fields__)
    assert all(meaning for _, _, meaning in rows)


def test_long_texts_are_read_as_chunks_unless_the_task_has_text_pairs():
    assert parse({}).long_text == "chunks"
    assert parse({"text_pair_column": "answer"}).long_text == "truncate"  # pairs are cut to max_length
    with pytest.raises(UserError, match="reads single texts"):
        parse({"text_pair_column": "answer", "long_text": "head_tail"})
