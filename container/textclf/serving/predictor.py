"""The one module of the server that touches torch and transformers; the loader imports it in the background.

Tokenising happens in request threads (`encode`), forward passes in the batcher (`logits`), both through
textclf.modeling so GPT-2 predicts exactly as it was evaluated in training. Texts are padded on the right with
an attention mask: a text gets the same logits alone or in a batch (within float tolerance).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import transformers

from ..cpu_kernels import prepack_linear_layers, quantize_linear_layers
from ..modeling import auto_bf16, forward_logits, load_classifier, load_tokenizer
from ..tracing import trace_forward
from ..windows import Framing, content_ids, frame_windows, reads_all
from .errors import InvalidInput
from .inputs import TextInput
from .modelinfo import ModelInfo
from .settings import ServingSettings

log = logging.getLogger("textclf.serving.predictor")

Encoded = dict  # one text's unpadded features: input_ids, and token_type_ids where the model has them

# A batch is padded to a multiple of this many tokens (never past the model's limit). oneDNN compiles and keeps
# kernels for every shape it meets: with every length its own shape, a CPU worker grew from 240 to 750 MB of its
# own memory under load; at multiples of 16, to 300 MB, at the same throughput and concurrency-1 latency
# (MiniLM, bfloat16 on AMX, make bench's fortunes texts). In float32 the shapes that cost memory are those of
# batches: 400 batches of 1 to 8 texts grew a worker by 134 MB at their own lengths, 33 MB padded, and 37 MB with
# lone texts at their own length. A lone float32 text is not padded: on an AMD EPYC, where float32 costs per
# token, padding (27 to 32 tokens for the median text) had cut the arrival rate held under 500 ms from 60 to 50/s.
PAD_TO_MULTIPLE = 16
# Texts in the warm-up's batch on CPU (see Predictor.warm_up).
WARM_UP_CPU_TEXTS = 4


def import_model_code(model_dir: Path) -> None:
    """Import torch, transformers and the model's architecture module, touching neither weights nor devices.

    gunicorn's master calls this before it forks CPU workers: what importing writes (the native libraries'
    relocated data and Python's objects, about 300 MB for torch alone) is then shared by every worker, copy on
    write, instead of being made again in each. Best effort: whatever fails here fails again, and is reported,
    where the worker loads the model."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    try:
        config = transformers.AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)]  # the lookup imports the architecture's module
    except Exception as exc:  # noqa: BLE001 - an optimisation only; the worker reports the real error
        log.debug("model code not imported ahead of the workers: %s", exc)


def _pick_device(setting: str) -> torch.device:
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")  # the worker sees only its own GPU (CUDA_VISIBLE_DEVICES set at fork)


def _pick_dtype(setting: str, device: torch.device) -> torch.dtype:
    """The precision the weights load in (int8 loads float32, then quantises)."""
    if setting == "int8":
        return torch.float32
    if setting != "auto":
        return getattr(torch, setting)
    return torch.bfloat16 if auto_bf16(device) else torch.float32  # the same rule as training's precision=auto


def float32_advice(metrics: Mapping) -> str:
    """Said at load when `auto` serves float32 on CPU, that is on a CPU without bf16 instructions: the faster
    choice there is int8, opt-in because labels may change, with this model's own int8 scores where its training
    job recorded them (evaluate_int8=true)."""
    said = (
        "float32, as TEXTCLF_DTYPE=auto chooses on a CPU without bfloat16 instructions; TEXTCLF_DTYPE=int8 answers "
        "faster on such a CPU but may change labels (README: int8)"
    )
    int8, as_trained = metrics.get("validation_int8"), metrics.get("validation")
    if not (isinstance(int8, dict) and isinstance(int8.get("labels_kept"), (int, float))):
        return f"{said}; train with evaluate_int8=true to see how many of this model's labels int8 keeps"
    said += f"; in int8 this model kept {int8['labels_kept']:.1%} of its validation labels"
    int8_accuracy = int8.get("accuracy")
    accuracy = as_trained.get("accuracy") if isinstance(as_trained, dict) else None
    if isinstance(int8_accuracy, (int, float)) and isinstance(accuracy, (int, float)):
        said += f", accuracy {int8_accuracy:.3f} against {accuracy:.3f}"
    return said


class Predictor:
    def __init__(self, info: ModelInfo, settings: ServingSettings) -> None:
        self.info = info
        self.limit = info.max_length
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        transformers.logging.set_verbosity_error()  # no "sequence longer than..." noise; we check lengths
        transformers.logging.disable_progress_bar()  # no progress bars in CloudWatch
        self.device = _pick_device(settings.device)
        self.dtype = _pick_dtype(settings.dtype, self.device)
        self.tokenizer = load_tokenizer(info.model_dir)
        self.model = load_classifier(info.model_dir, self.tokenizer, dtype=self.dtype).to(self.device).eval()
        self.precision = "int8" if settings.dtype == "int8" else str(self.dtype).replace("torch.", "")
        if settings.dtype == "int8":
            self.model = quantize_linear_layers(self.model)
        if self.device.type == "cpu" and settings.dtype == "auto" and self.dtype == torch.float32:
            log.info("precision: %s", float32_advice(info.metrics))
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.policy = info.long_text
        self.framing = Framing.of(self.tokenizer)
        # A fast tokenizer holds Rust state that changes with the truncation settings: one caller at a time.
        self._tokenizer_lock = threading.Lock()
        self.traced = None
        if self.device.type == "cpu":
            self._speed_up_on_cpu(settings)
        num_labels = self.model.config.num_labels
        if num_labels != len(info.labels):
            raise ValueError(f"the model has {num_labels} outputs but {len(info.labels)} labels are known")
        log.info(
            "model %s (%s) on %s as %s: %d labels, %d tokens per text, forward pass %s, %d torch threads, pid %d",
            info.model_dir,
            info.model_type,
            self.device,
            self.precision,
            num_labels,
            self.limit,
            "traced" if self.traced else "as loaded",
            torch.get_num_threads(),
            os.getpid(),
        )

    @torch.no_grad()
    def _speed_up_on_cpu(self, settings: ServingSettings) -> None:
        """What makes small batches fast on CPU, each checked against the model as loaded: bfloat16 weights
        prepacked for oneDNN, then the forward pass traced (textclf.cpu_kernels, textclf.tracing)."""
        prepack = settings.prepack and self.dtype == torch.bfloat16
        if not (prepack or settings.trace):
            return
        texts = ["the check of a faster model", "a second text, longer than the first, so that it is padded", "ok"]
        two, lone = self.encode([TextInput(text) for text in texts[:2]], True), self.encode([TextInput(texts[2])], True)
        longer = self.encode([TextInput(" ".join(texts * 8))], True)  # other lengths than the trace saw
        example = self.batch_tensors(two)
        if prepack and prepack_linear_layers(self.model, lambda: forward_logits(self.model, example).float()):
            self.precision += " (prepacked)"
        if settings.trace:
            probes = [example, self.batch_tensors(lone), self.batch_tensors(lone + longer)]
            self.traced = trace_forward(self.model, forward_logits, example, probes)

    # --- request threads ----------------------------------------------------------------------------------------

    def encode(self, inputs: Sequence[TextInput], truncation: bool, offset: int = 0) -> list[Encoded]:
        """Token ids per input; without truncation a text over the limit is refused with its length (422)."""
        pairs = [i for i, item in enumerate(inputs) if item.pair is not None]
        singles = [i for i, item in enumerate(inputs) if item.pair is None]
        encoded: list[Encoded] = [{}] * len(inputs)
        cut = {"truncation": "longest_first", "max_length": self.limit} if truncation else {"truncation": False}
        with self._tokenizer_lock:
            for group, with_pair in ((singles, False), (pairs, True)):
                if not group:
                    continue
                texts = [inputs[i].text for i in group]
                second = [inputs[i].pair for i in group] if with_pair else None
                batch = self.tokenizer(texts, second, return_attention_mask=False, **cut)
                for j, i in enumerate(group):
                    encoded[i] = {key: values[j] for key, values in batch.items()}
        for i, features in enumerate(encoded):
            length = len(features["input_ids"])
            if length > self.limit:
                raise InvalidInput(
                    f"Input {offset + i} is {length} tokens long; the model's limit is {self.limit} tokens. Send a "
                    f"shorter text or set parameters.truncation to true."
                )
        return encoded

    def encode_windows(self, inputs: Sequence[TextInput], truncation: bool, offset: int = 0) -> list[list[Encoded]]:
        """Each text's windows under the model's long-text policy. Without truncation, a text of which the policy
        would leave out any token is refused with its length (422): head_tail then reads whole texts only up to
        max_length tokens, chunks up to max_chunks windows."""
        if self.policy.name == "truncate":
            return [[features] for features in self.encode(inputs, truncation, offset)]
        for i, item in enumerate(inputs):
            if item.pair is not None:
                raise InvalidInput(
                    f"Input {offset + i} is a text pair; this model (long_text={self.policy.name}) reads single texts."
                )
        with self._tokenizer_lock:
            ids = content_ids(self.tokenizer, [item.text for item in inputs])
        content = self.limit - self.framing.specials
        if not truncation:
            for i, text_ids in enumerate(ids):
                if not reads_all(len(text_ids), content, self.policy):
                    raise InvalidInput(
                        f"Input {offset + i} is {len(text_ids) + self.framing.specials} tokens long; this model "
                        f"(long_text={self.policy.name}) reads at most {self._most_read(content)} tokens of a "
                        "text. Send a shorter text or set parameters.truncation to true."
                    )
        return [frame_windows(text_ids, self.framing, self.limit, self.policy) for text_ids in ids]

    def _most_read(self, content: int) -> int:
        if self.policy.name != "chunks":
            return self.limit
        return self.policy.tokens_read(content) + self.framing.specials

    # --- the batcher thread -------------------------------------------------------------------------------------

    @torch.inference_mode()
    def logits(self, batch: Sequence[Encoded]) -> list[list[float]]:
        tensors = self.batch_tensors(batch)
        if self.traced is not None and tuple(tensors) == self.traced.keys:
            logits = self.traced(tensors)
        else:
            logits = forward_logits(self.model, tensors)
        return logits.float().cpu().tolist()

    def batch_tensors(self, batch: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """One padded batch on the model's device: input_ids (and token_type_ids where the texts have them), then
        attention_mask, padded on the right to a multiple of PAD_TO_MULTIPLE tokens."""
        longest = max(len(features["input_ids"]) for features in batch)
        if len(batch) > 1 or self.dtype != torch.float32:
            longest = min(-(-longest // PAD_TO_MULTIPLE) * PAD_TO_MULTIPLE, max(longest, self.limit))
        tensors: dict[str, torch.Tensor] = {}
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for key in batch[0]:
            pad = self.pad_id if key == "input_ids" else 0
            tensors[key] = torch.full((len(batch), longest), pad, dtype=torch.long)
        for row, features in enumerate(batch):
            n = len(features["input_ids"])
            mask[row, :n] = 1
            for key, values in features.items():
                tensors[key][row, :n] = torch.tensor(values, dtype=torch.long)
        tensors["attention_mask"] = mask
        return {key: value.to(self.device, non_blocking=True) for key, value in tensors.items()}

    def warm_up(self, max_batch_size: int, max_batch_tokens: int, run: Callable | None = None) -> float:
        """One short text, then a batch of texts of the model's full length, through `run` (the runner, so that
        its thread pays its own first-call costs): all of it before /ping may say 200. Returns the tokens per
        second of that batch: a first call of long texts, so an estimate on the low side.

        On a GPU the batch is the largest the batcher may form (its throughput grows with the batch, and the
        bound on a request's tokens comes from it). On CPU it is WARM_UP_CPU_TEXTS texts: throughput there hardly
        grows with the batch, and the largest batch had taken 1.8 of a 10 s cold start (MiniLM, float32, one
        thread) while a first call of it afterwards cost no more than a second."""
        run = run or self.logits
        short = self.encode([TextInput("warm up")], truncation=True)
        run(short)
        ids = short[0]["input_ids"]
        filler = ids[1:-1] or ids
        long_ids = (ids[:1] + filler * self.limit)[: self.limit - 1] + ids[-1:]
        features = {"input_ids": long_ids}
        if "token_type_ids" in short[0]:
            features["token_type_ids"] = [0] * len(long_ids)
        count = max(1, min(max_batch_size, max_batch_tokens // len(long_ids)))
        if self.device.type == "cpu":
            count = min(count, WARM_UP_CPU_TEXTS)
        started = time.perf_counter()
        run([features] * count)
        return count * len(long_ids) / max(time.perf_counter() - started, 1e-6)
