"""Content types in and out: a table from media type to decoder, another to encoder, and Accept negotiation.

Requests: application/json (`{"inputs": ..., "parameters": {...}}`, or a bare string or list),
application/jsonlines (one object per line, answered one line per line), text/csv (one text per row), text/plain
(one text). Answers: application/json, application/jsonlines, text/csv. Standard library only.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

from ..errors import UserError
from .errors import InvalidInput, MalformedBody, NotAcceptable, UnsupportedContentType
from .inputs import FUNCTIONS, DecodedRequest, Parameters, Result, TextInput

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
TEXT = "text/plain"
ALIASES = {"application/x-jsonlines": JSONLINES, "application/jsonl": JSONLINES, "application/x-ndjson": JSONLINES}
# The SageMaker Python SDK's default serializer sends str as-is under this type: read it as the text it is.
ALIASES["application/octet-stream"] = TEXT
# --- media types ------------------------------------------------------------------------------------------------


def parse_media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """'Application/JSON; charset=UTF-8' -> ('application/json', {'charset': 'utf-8'}), aliases resolved."""
    if not header or not header.strip():
        return "", {}
    main, *rest = header.split(";")
    params = {}
    for part in rest:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"').lower()
    media = main.strip().lower()
    return ALIASES.get(media, media), params


def negotiate(accept: str | None, default: str, supported: tuple[str, ...]) -> str:
    """The answer's media type: the best of Accept (q-values honoured) that we write; `default` for */* or none."""
    if not accept or not accept.strip():
        return default
    ranked = []
    for position, item in enumerate(accept.split(",")):
        media, params = parse_media_type(item)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        if media and q > 0:
            ranked.append((-q, position, media))
    for _, _, media in sorted(ranked):
        if media in ("*/*", "*"):
            return default
        if media.endswith("/*"):
            major = media[:-1]
            if default.startswith(major):
                return default
            match = next((s for s in supported if s.startswith(major)), None)
            if match:
                return match
        elif media in supported:
            return media
    raise NotAcceptable(f"Cannot answer in {accept!r}; this server writes {', '.join(supported)}.")


def body_text(body: bytes, params: dict[str, str]) -> str:
    charset = params.get("charset") or "utf-8"
    try:
        return body.decode("utf-8-sig" if charset in ("utf-8", "utf8") else charset)
    except LookupError:
        raise UnsupportedContentType(f"Unknown charset {charset!r}; send UTF-8.") from None
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"The body is not valid {charset} text (byte {exc.object[exc.start]:#04x} at offset {exc.start})."
        ) from None


# --- decoders ---------------------------------------------------------------------------------------------------


def _parameters(raw: object, where: str) -> Parameters:
    if raw is None:
        return Parameters()
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object, not {_kind(raw)}.")
    known = {"top_k", "truncation", "function_to_apply", "return_all_scores"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidInput(f"Unknown parameter {unknown[0]!r} in {where}; known: {', '.join(sorted(known))}.")
    top_k, given = None, False
    if "top_k" in raw:
        top_k, given = raw["top_k"], True
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise InvalidInput(f"{where}.top_k must be a whole number >= 1 or null, not {json.dumps(top_k)}.")
    elif "return_all_scores" in raw:  # the pipeline's older spelling of top_k=null
        given = raw["return_all_scores"]
        if not isinstance(given, bool):
            raise InvalidInput(f"{where}.return_all_scores must be true or false, not {json.dumps(given)}.")
    truncation = raw.get("truncation", True)
    if not isinstance(truncation, bool):
        raise InvalidInput(f"{where}.truncation must be true or false, not {json.dumps(truncation)}.")
    function = raw.get("function_to_apply")
    if function is not None and (not isinstance(function, str) or function.lower() not in FUNCTIONS):
        raise InvalidInput(
            f"{where}.function_to_apply must be one of {', '.join(FUNCTIONS)}, not {json.dumps(function)}."
        )
    return Parameters(top_k, given, truncation, function.lower() if function else None)


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _text_input(value: object, where: str) -> TextInput:
    if isinstance(value, dict) and "text" in value:
        text, pair = value.get("text"), value.get("text_pair")
        if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
            raise InvalidInput(f"{where} must hold strings in 'text' and 'text_pair'.")
        item = TextInput(text, pair)
    elif isinstance(value, str):
        item = TextInput(value)
    else:
        raise InvalidInput(f"{where} is {_kind(value)}; expected a string (or {{'text', 'text_pair'}}).")
    if not item.text.strip():
        raise InvalidInput(f"{where} is an empty text.")
    for part in (item.text, item.pair or ""):
        try:
            part.encode("utf-8")
        except UnicodeEncodeError as exc:  # JSON's "\ud800" escape decodes to half a character
            raise InvalidInput(
                f"{where} holds a lone surrogate (\\u{ord(part[exc.start]):04x}) at character {exc.start}; "
                "send valid Unicode text."
            ) from None
    return item


def _inputs(value: object, where: str) -> tuple[list[TextInput], bool]:
    if isinstance(value, list):
        if not value:
            raise InvalidInput(f"{where} is an empty list; send at least one text.")
        return [_text_input(v, f"{where}[{i}]") for i, v in enumerate(value)], False
    return [_text_input(value, where)], True


def _loads(text: str, where: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedBody(f"Malformed JSON{where}: {exc.msg} at line {exc.lineno} column {exc.colno}.") from None
    except RecursionError:
        raise MalformedBody(f"The JSON{where} is nested too deeply to be read; send inputs as a flat list.") from None


def decode_json(text: str, text_pair: bool = False, media: dict[str, str] | None = None) -> DecodedRequest:
    return decode_value(_loads(text, ""))


def decode_value(data: object) -> DecodedRequest:
    """A JSON request body's value (`{"inputs": ..., "parameters": ...}`, a string or a list) as a request."""
    if isinstance(data, dict):
        if "inputs" not in data:
            raise InvalidInput('The JSON object has no "inputs"; send {"inputs": "text" or ["text", ...]}.')
        extra = sorted(set(data) - {"inputs", "parameters"})
        if extra:
            raise InvalidInput(f'Unknown key {extra[0]!r}; the object holds "inputs" and "parameters".')
        inputs, single = _inputs(data["inputs"], "inputs")
        params = _parameters(data.get("parameters"), "parameters")
    else:
        inputs, single = _inputs(data, "the body")
        params = Parameters()
    return DecodedRequest(inputs, [params] * len(inputs), single)


def decode_jsonlines(text: str, text_pair: bool = False, media: dict[str, str] | None = None) -> DecodedRequest:
    inputs, params = [], []
    # Lines end at \n (\r\n too) only: str.splitlines() would also split inside a string holding U+2028 or U+0085.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        data = _loads(line, f" on line {number}")
        where = f"line {number}"
        if isinstance(data, dict) and "inputs" in data:
            inputs.append(_text_input(data["inputs"], f"{where} inputs"))
            params.append(_parameters(data.get("parameters"), f"{where} parameters"))
        else:
            inputs.append(_text_input(data, where))
            params.append(Parameters())
    if not inputs:
        raise InvalidInput('The JSON Lines body holds no lines; send one {"inputs": "text"} per line.')
    return DecodedRequest(inputs, params)


def decode_csv(text: str, text_pair: bool = False, media: dict[str, str] | None = None) -> DecodedRequest:
    """One input per CSV record, never fewer answers than records: a blank record is refused by its number.

    A header row is read when the Content-Type says `header=present` (RFC 4180's parameter), never with
    `header=absent`, and otherwise only when the first record names several columns, one of them exactly `text`:
    a lone first cell is always a text (a headerless body may well start with the word "Text").
    """
    header_parameter = (media or {}).get("header")
    if header_parameter not in (None, "present", "absent"):
        raise InvalidInput(f"Content-Type parameter header={header_parameter!r}: use header=present or header=absent.")
    try:
        # Trailing line breaks end the last record; they are not empty records.
        rows = list(csv.reader(io.StringIO(text.rstrip("\r\n"), newline="")))
    except csv.Error as exc:
        raise MalformedBody(f"Malformed CSV: {exc}.") from None
    if not rows or rows == [[]]:
        raise InvalidInput("The CSV body holds no rows; send one text per row.")
    first = [cell.strip() for cell in rows[0]]
    has_header = header_parameter == "present" or (header_parameter is None and len(first) > 1 and "text" in first)
    numbered = list(enumerate(rows, start=1))
    if has_header:
        names = [cell.lower() for cell in first]
        if "text" not in names:
            raise InvalidInput(f"The CSV header row names no 'text' column (it names {', '.join(first)}).")
        text_col, pair_col = names.index("text"), names.index("text_pair") if "text_pair" in names else None
        numbered = numbered[1:]
        if not numbered:
            raise InvalidInput("The CSV body holds a header row and no texts.")
    else:
        text_col, pair_col = 0, 1 if text_pair else None
        width = 2 if text_pair else 1
        for number, row in numbered:
            if len(row) > width:
                raise InvalidInput(
                    f"CSV row {number} has {len(row)} columns; without a header row naming a 'text' "
                    f"column each row must be one text (quote texts that hold commas)."
                )
    inputs = []
    for number, row in numbered:
        if not row:
            raise InvalidInput(f"CSV row {number} is empty; send one text per row (no blank lines between rows).")
        text_value = row[text_col] if text_col < len(row) else ""
        pair_value = row[pair_col] if pair_col is not None and pair_col < len(row) else None
        inputs.append(_text_input({"text": text_value, "text_pair": pair_value}, f"CSV row {number}"))
    return DecodedRequest(inputs, [Parameters()] * len(inputs))


def decode_text(text: str, text_pair: bool = False, media: dict[str, str] | None = None) -> DecodedRequest:
    text = text.rstrip("\r\n")
    return DecodedRequest([_text_input(text, "the text/plain body")], [Parameters()], single=True)


# (body text, the model reads pairs, the Content-Type's parameters) -> the request
DECODERS: dict[str, Callable[[str, bool, dict[str, str]], DecodedRequest]] = {
    JSON: decode_json,
    JSONLINES: decode_jsonlines,
    CSV: decode_csv,
    TEXT: decode_text,
}


def decode(body: bytes, content_type: str | None, text_pair: bool = False) -> DecodedRequest:
    media, params = parse_media_type(content_type)
    decoder = DECODERS.get(media or JSON)  # no Content-Type at all: JSON, the contract's default
    if decoder is None:
        raise UnsupportedContentType(f"Cannot read Content-Type {content_type!r}; send {', '.join(DECODERS)}.")
    request = decoder(body_text(body, params), text_pair, params)
    check_pairing(request.inputs, text_pair)
    return request


def check_pairing(inputs: list[TextInput], text_pair: bool) -> None:
    """A pair model needs both texts of every input, and a single-text model only one: either mismatch would be
    answered with scores that mean nothing, so it is refused."""
    for number, item in enumerate(inputs, start=1):
        if text_pair and item.pair is None:
            raise InvalidInput(
                f"Input {number} is a single text, but this model was trained on text pairs; send each input as "
                '{"text": ..., "text_pair": ...} (CSV: two columns, or a header naming text and text_pair).'
            )
        if not text_pair and item.pair is not None:
            raise InvalidInput(
                f"Input {number} has a text_pair, but this model was trained on single texts; send the text alone."
            )


def check_content_type(content_type: str | None) -> str:
    media, _ = parse_media_type(content_type)
    if (media or JSON) not in DECODERS:
        raise UnsupportedContentType(f"Cannot read Content-Type {content_type!r}; send {', '.join(DECODERS)}.")
    return media or JSON


# --- encoders ---------------------------------------------------------------------------------------------------


def encode_json(results: list[Result], single: bool) -> bytes:
    # The pipeline's shapes: a bare string gets [best] or, with top_k, the flat list of its labels.
    if single:
        payload = results[0] if isinstance(results[0], list) else results
    else:
        payload = results
    return json.dumps(payload).encode()


# JSON Lines and CSV answers put a newline between lines and none after the last: batch transform with
# AssembleWith=Line appends one newline per answer itself, so a trailing one would leave a blank line per request.


def encode_jsonlines(results: list[Result], single: bool) -> bytes:
    return "\n".join(json.dumps(result) for result in results).encode()


def encode_csv(results: list[Result], single: bool) -> bytes:
    # One row per input and no header row, so batch transform can join answers to inputs line by line:
    # label,score for one answer; label,score,label,score,... best first for several.
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for result in results:
        entries = result if isinstance(result, list) else [result]
        writer.writerow([value for entry in entries for value in (entry["label"], repr(entry["score"]))])
    return out.getvalue().removesuffix("\n").encode()


ENCODERS: dict[str, Callable[[list[Result], bool], bytes]] = {
    JSON: encode_json,
    JSONLINES: encode_jsonlines,
    CSV: encode_csv,
}
SUPPORTED_ACCEPT = tuple(ENCODERS)


def check_default_accept(media: str | None) -> None:
    """SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, when set, must name a format we write: checked before serving."""
    if media is not None and parse_media_type(media)[0] not in ENCODERS:
        raise UserError(
            f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={media!r} is not a format this server writes.",
            f"Use one of {', '.join(ENCODERS)}.",
        )


def choose_accept(accept: str | None, request_type: str, default: str | None) -> str:
    """Accept negotiation. With no Accept (or */*) the answer uses `default` (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT)
    when it is set, else the request's own format when we write it (JSON Lines in, JSON Lines out: batch transform
    joins lines), else JSON."""
    if default is None:
        default = request_type if request_type in ENCODERS else JSON
    return negotiate(accept, parse_media_type(default)[0], SUPPORTED_ACCEPT)


def encode(results: list[Result], media: str, single: bool) -> bytes:
    return ENCODERS[media](results, single)
