"""Tiny randomly initialised base models (BERT, GPT-2) built in code: no hub, no download, seconds to train.

    python tools/tiny_models.py bert|gpt2 OUT_DIR [--seed N]
BERT's vocabulary (tools/tiny_bert_vocab.txt, one token per line in id order) was learnt once from
tools/sample_data.py's words by `tokenizers`' WordPiece trainer, so sample texts tokenise into real words. It is
kept in a file because that trainer breaks ties in its own hash order, different in each process: every build had
another vocabulary, and the SDK suite's ten-epoch fit sometimes ended at 0.75 validation accuracy instead of 1.0.
The weights are seeded: some random starts need many more epochs on the sample data, so runs start alike.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_data import FILLER, TOPICS, make_rows  # noqa: E402

BERT_VOCABULARY = Path(__file__).resolve().parent / "tiny_bert_vocab.txt"

# Hyperparameters that train the tiny models in seconds on 2 CPU cores (the tests use them).
TINY_HYPERPARAMETERS = {
    "epochs": "2",
    "per_device_batch_size": "16",
    "max_length": "64",
    "learning_rate": "0.003",
    "warmup_ratio": "0.0",
    "logging_steps": "5",
}


def _corpus() -> list[str]:
    words = sorted({w for ws in TOPICS.values() for w in ws} | set(FILLER))
    return [row["text"] for row in make_rows(200, seed=123)] + words


def build_bert(out: Path, hidden: int = 32, layers: int = 2, max_positions: int = 128, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    tok = Tokenizer(models.WordPiece.from_file(str(BERT_VOCABULARY), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    tokenizer = BertTokenizerFast(tokenizer_object=tok, model_max_length=max_positions)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions,
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    return _save(_seeded(seed, BertForSequenceClassification, config), tokenizer, out)


def build_gpt2(out: Path, hidden: int = 32, layers: int = 2, max_positions: int = 128, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(), trainer)
    eos = "<|endoftext|>"
    # No pad token, exactly like the real GPT-2: the training code must supply one.
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=tok, bos_token=eos, eos_token=eos, unk_token=eos, model_max_length=max_positions
    )
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_embd=hidden,
        n_layer=layers,
        n_head=2,
        n_positions=max_positions,
        bos_token_id=tok.token_to_id(eos),
        eos_token_id=tok.token_to_id(eos),
    )
    return _save(_seeded(seed, GPT2ForSequenceClassification, config), tokenizer, out)


def _seeded(seed: int, model_class, config):
    import torch

    with torch.random.fork_rng(devices=[]):  # the caller's random state (a test session's) is left as it was
        torch.manual_seed(seed)
        return model_class(config)


def _save(model, tokenizer, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


BUILDERS = {"bert": build_bert, "gpt2": build_gpt2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(BUILDERS))
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = parser.parse_args()
    BUILDERS[args.kind](args.out, seed=args.seed)
    print(args.out)


if __name__ == "__main__":
    main()
