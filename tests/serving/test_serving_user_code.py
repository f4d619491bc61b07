"""Finding the inference script and reading its hooks' signatures (serving/user_code.py): no server needed."""

from __future__ import annotations

import sys
import textwrap

import pytest
from textclf.contract import serving_environment
from textclf.errors import UserError
from textclf.serving import user_code


@pytest.fixture(autouse=True)
def _isolated_imports(monkeypatch):
    """load() puts the script's directory on sys.path and the module in sys.modules, as a worker needs: undone here."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def env(**variables: str):
    return serving_environment(variables)


def test_the_script_is_code_inference_py_or_sagemaker_program_in_the_submit_directory(tmp_path):
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    assert user_code.locate(env(), model) is None  # no script: the built-in classifier alone
    (model / "code" / "inference.py").write_text("")
    assert user_code.locate(env(), model) == model / "code" / "inference.py"
    (model / "code" / "serve_me.py").write_text("")
    assert user_code.locate(env(SAGEMAKER_PROGRAM="serve_me"), model) == model / "code" / "serve_me.py"
    elsewhere = tmp_path / "src"
    elsewhere.mkdir()
    (elsewhere / "entry.py").write_text("")
    found = user_code.locate(env(SAGEMAKER_PROGRAM="entry.py", SAGEMAKER_SUBMIT_DIRECTORY=f"file://{elsewhere}"), model)
    assert found == elsewhere / "entry.py"


def test_a_program_that_cannot_be_found_or_fetched_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(UserError, match="SAGEMAKER_PROGRAM='gone.py' names no file"):
        user_code.locate(env(SAGEMAKER_PROGRAM="gone.py"), tmp_path)
    remote = env(SAGEMAKER_PROGRAM="inference.py", SAGEMAKER_SUBMIT_DIRECTORY="s3://bucket/code/sourcedir.tar.gz")
    with pytest.raises(UserError, match="is a remote location; this image does not download code") as caught:
        user_code.locate(remote, tmp_path)
    assert "code/inference.py" in caught.value.remedy


def load(tmp_path, source: str) -> user_code.UserCode:
    script = tmp_path / "inference.py"
    script.write_text(textwrap.dedent(source))
    return user_code.load(script)


def test_hooks_with_the_context_argument_or_defaults_are_told_apart(tmp_path):
    code = load(
        tmp_path,
        """
        def model_fn(model_dir, context):
            return context
        def input_fn(body, content_type, extra=None):
            return extra
        def output_fn(*args):
            return len(args)
        """,
    )
    assert set(code.hooks) == {"model_fn", "input_fn", "output_fn"}
    assert code.hooks["model_fn"]("dir", context="ctx") == "ctx"
    assert code.hooks["input_fn"](b"", "text/plain", context="ctx") is None
    assert code.hooks["output_fn"]([], "application/json", context="ctx") == 2


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def predict_fn(data):\n    pass\n", "predict_fn takes 1 arguments; it is called with 2"),
        ("predict_fn = 3\n", "predict_fn is not a function"),
        ("def transform_fn(m, b, c, a):\n    pass\ndef output_fn(p, a):\n    pass\n", "defines transform_fn and"),
    ],
)
def test_a_script_the_chain_cannot_call_is_refused(tmp_path, source, message):
    with pytest.raises(UserError, match=message):
        load(tmp_path, source)


def test_a_syntax_error_names_the_line(tmp_path):
    script = tmp_path / "inference.py"
    script.write_text("import json\ndef output_fn(prediction, accept)\n")
    with pytest.raises(UserError, match=r"inference.py line 2: .* \(a syntax error\)"):
        user_code.check_syntax(script)
