"""Inference hooks: the team's functions from inference.py, chained with the built-in ones it leaves out.

The chain is the SageMaker inference toolkits': model_fn(model_dir) once per worker, then per request
input_fn(body, content_type) -> predict_fn(data, model) -> output_fn(prediction, accept), or transform_fn(model,
body, content_type, accept) alone. The built-in functions, as Python values:

- model_fn: the built-in classifier (an `Inference`: tokeniser, model, dynamic batcher, request bounds), loaded and
  warmed up exactly as without hooks.
- input_fn: the request as the codecs decode it: a `DecodedRequest` (`.inputs`: TextInput(text, pair) per input,
  `.parameters`: one Parameters each, `.single`).
- predict_fn: takes a DecodedRequest, or the value of a JSON request body (`{"inputs": ..., "parameters": ...}`,
  a string, a list of strings), and answers a `Predictions` list: per input, `{"label", "score"}` (or a list of
  them with top_k, or for multi-label models). Its texts go through the batcher, with other requests' texts.
- output_fn: writes built-in answers in the negotiated format (JSON, JSON Lines, CSV); any other JSON-able value
  as JSON (JSON Lines: one line per item of a list).

A hook's exception is a HookFailed (500, naming the hook; the traceback is logged); a ValueError from the script's
input_fn is the caller's malformed body (400, as the codecs answer a body they cannot read). No torch here.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import codecs
from .errors import HookFailed, MalformedBody, NotAcceptable, RequestError
from .inference import Inference
from .inputs import DecodedRequest
from .user_code import Hook, UserCode

log = logging.getLogger("textclf.serving.hooks")

UTF8_TYPES = (codecs.JSON, codecs.CSV)  # the toolkits hand these bodies to input_fn as str, others as bytes
WARM_UP_BODY = json.dumps({"inputs": ["warm up"]})
MESSAGE_LIMIT = 300  # characters of the hook's exception message in the answer


class Predictions(list):
    """The built-in predict_fn's answer: one result per input, in input order. A list, plus `single`: the request
    was one bare string (JSON answers it as the transformers pipeline does)."""

    def __init__(self, results: list, single: bool = False) -> None:
        super().__init__(results)
        self.single = single


@dataclass
class HookContext:
    """What a hook that asks for the toolkits' `context` argument gets: `system_properties` only."""

    system_properties: dict[str, Any] = field(default_factory=dict)


def _is_result(value: Any) -> bool:
    entries = value if isinstance(value, list) else [value]
    return all(isinstance(entry, dict) and {"label", "score"} <= set(entry) for entry in entries)


def builtin_output(prediction: Any, accept: str) -> tuple[bytes, str]:
    """The built-in output_fn: (body, content type)."""
    media = codecs.negotiate(accept, codecs.JSON, codecs.SUPPORTED_ACCEPT)
    if isinstance(prediction, list) and prediction and all(_is_result(item) for item in prediction):
        return codecs.encode(list(prediction), media, getattr(prediction, "single", False)), media
    if media == codecs.JSONLINES and isinstance(prediction, list):
        return "\n".join(json.dumps(item) for item in prediction).encode(), media
    if media == codecs.CSV:
        raise NotAcceptable("The prediction is not label/score answers, which alone are written as CSV; ask for JSON.")
    return json.dumps(prediction).encode(), media


def _content_type_of(accept: str) -> str:
    """The answer's Content-Type when output_fn returns a body alone: Accept, when it names one concrete type."""
    if "," in accept or "*" in accept:
        return "application/octet-stream"
    return accept.strip()


@dataclass
class HookedInference:
    """What requests use when an inference script is served; the app calls invoke()."""

    code: UserCode
    model: Any  # what model_fn returned (the built-in one: an Inference)
    default_accept: str | None  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT
    context: HookContext

    @property
    def builtin(self) -> Inference | None:
        return self.model if isinstance(self.model, Inference) else None

    @property
    def limits(self):
        return self.builtin.limits if self.builtin else None

    @property
    def runner(self):
        return self.builtin.runner if self.builtin else None

    @property
    def hooks(self) -> dict[str, Hook]:
        return self.code.hooks

    def describe(self) -> str:
        built_in = [name for name in ("model_fn", "input_fn", "predict_fn", "output_fn") if name not in self.hooks]
        if "transform_fn" in self.hooks:
            built_in = [] if "model_fn" in self.hooks else ["model_fn"]
        return f"{self.code.describe()}; built-in: {', '.join(built_in) or 'none'}"

    # --- one request ---------------------------------------------------------------------------------------------

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, request_id: str, arrived: float
    ) -> tuple[bytes, str]:
        """The answer's body and Content-Type."""
        content_type = content_type or codecs.JSON
        media, _ = codecs.parse_media_type(content_type)
        accept = self._accept(accept, media)
        data: Any = body
        if media in UTF8_TYPES:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedBody(f"The body is not valid UTF-8 text (byte offset {exc.start}).") from None
        if "transform_fn" in self.hooks:
            result = self._call(self.hooks["transform_fn"], request_id, self.model, data, content_type, accept)
            return self._response(result, accept, "transform_fn")
        if "input_fn" in self.hooks:
            decoded = self._call(self.hooks["input_fn"], request_id, data, content_type)
        else:
            text_pair = self.builtin.text_pair if self.builtin else False
            decoded = self._call_builtin("input_fn", request_id, codecs.decode, body, content_type, text_pair)
        if "predict_fn" in self.hooks:
            prediction = self._call(self.hooks["predict_fn"], request_id, decoded, self.model)
        else:
            prediction = self._call_builtin("predict_fn", request_id, self._predict, decoded, arrived)
        if "output_fn" in self.hooks:
            result = self._call(self.hooks["output_fn"], request_id, prediction, accept)
            return self._response(result, accept, "output_fn")
        return self._call_builtin("output_fn", request_id, builtin_output, prediction, accept)

    def _accept(self, accept: str | None, request_media: str) -> str:
        """Accept as sent; with none (or */*), the built-in default: SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else the
        request's own format when the built-in output_fn writes it (JSON Lines in, JSON Lines out), else JSON."""
        if accept and accept.strip() not in ("*/*", "*"):
            return accept
        return codecs.choose_accept(None, request_media, self.default_accept)

    def _predict(self, data: Any, arrived: float) -> Predictions:
        request = data if isinstance(data, DecodedRequest) else codecs.decode_value(data)
        codecs.check_pairing(request.inputs, self.builtin.text_pair)
        results, _ = self.builtin.classify(request, arrived)
        return Predictions(results, request.single)

    def _call(self, hook: Hook, request_id: str, *args: Any) -> Any:
        try:
            return hook(*args, context=self.context)
        except RequestError:
            raise  # the built-in codecs' own refusals, reached from the script, keep their status
        except ValueError as exc:
            if hook.name != "input_fn":
                raise self._failed(hook.name, exc, request_id) from exc
            log.info("request %s: input_fn refused the body: %s", request_id, exc)
            raise MalformedBody(f"input_fn could not read the request: {_short(exc)}") from None
        except Exception as exc:
            raise self._failed(hook.name, exc, request_id) from exc

    def _call_builtin(self, name: str, request_id: str, function: Callable, *args: Any) -> Any:
        try:
            return function(*args)
        except RequestError:
            raise
        except Exception as exc:
            raise self._failed(f"{name} (built-in)", exc, request_id) from exc

    @staticmethod
    def _failed(name: str, exc: Exception, request_id: str) -> HookFailed:
        log.error("request %s: %s raised %s", request_id, name, type(exc).__name__, exc_info=exc)
        return HookFailed(
            name, f"{name} raised {type(exc).__name__}: {_short(exc)} (request {request_id}; see the server log)"
        )

    def _response(self, result: Any, accept: str, name: str) -> tuple[bytes, str]:
        body, content_type = result if isinstance(result, tuple) and len(result) == 2 else (result, None)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, (bytes, bytearray)) or not isinstance(content_type, (str, type(None))):
            raise HookFailed(
                name,
                f"{name} returned {type(result).__name__}; return bytes, str or (body, content_type).",
            )
        return bytes(body), content_type or _content_type_of(accept)

    # --- start-up ------------------------------------------------------------------------------------------------

    def warm_up(self) -> str:
        """One built-in-style request (`{"inputs": ["warm up"]}` as JSON) through the chain, unless the script reads
        bodies itself (input_fn or transform_fn): then no sample can be formed that it is known to accept, and
        model_fn alone is the warm-up. A failure stops the worker, naming the hook."""
        if "transform_fn" in self.hooks or "input_fn" in self.hooks:
            return "model_fn only (the script reads request bodies itself)"
        try:
            self.invoke(WARM_UP_BODY.encode(), codecs.JSON, None, "warm-up", time.perf_counter())
        except RequestError as exc:
            raise RuntimeError(f"The warm-up request through the inference script failed: {exc.message}") from exc
        return f"one request ({WARM_UP_BODY}) through the chain"


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _start_up(hook: Hook, context: HookContext, *args: Any) -> Any:
    try:
        return hook(*args, context=context)
    except Exception as exc:
        raise RuntimeError(f"{hook.name} raised {type(exc).__name__}: {exc}") from exc


def load_hooked(
    code: UserCode, model_dir: Path, load_builtin: Callable[[], Inference], default_accept: str | None
) -> HookedInference:
    """pre_model_fn, model_fn (the script's, or the built-in classifier), model_warmup_fn, then the warm-up: all
    before /ping may say 200."""
    started = time.perf_counter()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    context = HookContext({"model_dir": str(model_dir), "gpu_id": 0 if visible and visible != "-1" else None})
    if "pre_model_fn" in code.hooks:
        _start_up(code.hooks["pre_model_fn"], context, str(model_dir))
    if "model_fn" in code.hooks:
        model = _start_up(code.hooks["model_fn"], context, str(model_dir))
        gc.collect()
        gc.freeze()  # as the built-in loader does: long-lived objects out of the collector's reach
    else:
        model = load_builtin()
    served = HookedInference(code, model, default_accept, context)
    if not any(name in code.hooks for name in ("predict_fn", "transform_fn")) and served.builtin is None:
        raise UserError(
            f"model_fn in {code.script} returned {type(model).__name__}, which the built-in predict_fn cannot run.",
            "Define predict_fn(data, model) too, or leave model_fn out to serve the built-in classifier.",
        )
    if "model_warmup_fn" in code.hooks:
        _start_up(code.hooks["model_warmup_fn"], context, str(model_dir), model)
    how = served.warm_up()
    log.info("%s; warm-up: %s; %.1f s", served.describe(), how, time.perf_counter() - started)
    return served
