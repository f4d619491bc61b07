"""What a decoded request holds: texts (or text pairs) and their parameters. Standard library only.

The codecs build these from request bodies; the inference side reads them. Neither needs the other's module.
"""

from __future__ import annotations

from dataclasses import dataclass

FUNCTIONS = ("softmax", "sigmoid", "none")


@dataclass(frozen=True)
class TextInput:
    text: str
    pair: str | None = None  # the second text of a pair, for models trained on (text, text_pair)


@dataclass(frozen=True)
class Parameters:
    top_k: int | None = None  # None with top_k_given: every label
    top_k_given: bool = False
    truncation: bool = True
    function_to_apply: str | None = None  # None: the model's own (sigmoid for multi-label, else softmax)


@dataclass
class DecodedRequest:
    inputs: list[TextInput]
    parameters: list[Parameters]  # one per input (JSON Lines lines may each carry their own)
    single: bool = False  # a bare string in JSON: answered the way the transformers pipeline answers it


Result = dict | list  # one input's answer: {"label", "score"}, or a list of them
