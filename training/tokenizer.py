"""The model's byte-level BPE tokenizer, its Llama 3 chat template, and their files.

Trained by `tokenizers` on generated task text. Digits are split one per token: a number is then
copied digit by digit, which a small model learns fast, and no merge can hide a digit inside a
longer token. Special tokens, template and BOS handling are those of Llama 3 (and of the engine's
demo model), so the engine and the server treat this checkpoint like a real Llama 3 one.
"""
import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from shadowkv_engine.demo_model import CHAT_TEMPLATE

BOS, END_OF_TEXT, START_HEADER, END_HEADER, EOT = (
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
SPECIAL_TOKENS = [BOS, END_OF_TEXT, START_HEADER, END_HEADER, EOT]  # trainer gives them ids 0..4
BOS_ID, END_OF_TEXT_ID, EOT_ID = 0, 1, 4

# The chat template is the demo model's (Llama 3 Instruct's), so both checkpoints render alike.

# Llama 3's split, except `\p{N}` alone where Llama 3 groups up to three digits.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def header(role: str) -> str:
    """What the template writes before a message's content."""
    return f"{START_HEADER}{role}{END_HEADER}\n\n"


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # every byte, so any text encodes
    tokenizer.train_from_iterator(texts, trainer)
    # Plain completions get BOS; chat prompts carry it in the template (encode them without).
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, BOS_ID)])
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, directory: Path, model_max_length: int) -> None:
    """tokenizer.json, tokenizer_config.json (with the chat template), generation_config.json."""
    tokenizer.save(str(directory / "tokenizer.json"))
    _write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOT,
        "pad_token": END_OF_TEXT,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "chat_template": CHAT_TEMPLATE,
    })
    _write_json(directory / "generation_config.json", {
        "bos_token_id": BOS_ID, "eos_token_id": [END_OF_TEXT_ID, EOT_ID], "pad_token_id": END_OF_TEXT_ID,
        "do_sample": False})


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
