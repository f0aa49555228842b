"""Tokenizer, chat template and streaming detokenizer of a Hugging Face checkpoint.

The runtime does not depend on transformers, so this reads the checkpoint's files the way
`transformers.AutoTokenizer` does (tokenizer.json through the `tokenizers` library, plus
tokenizer_config.json and generation_config.json) and renders chat templates in the same jinja2
sandbox with the same options; the tests hold both to identical ids, text and prompts.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Sequence

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken
from tokenizers import Tokenizer as BackendTokenizer

from shadowkv_engine.errors import InvalidRequestError

# The special tokens transformers exposes by name, and passes to every chat template.
NAMED_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class Tokenizer:
    """Text <-> token ids for one checkpoint, with its chat template and stop tokens.

    Whether encode adds BOS/EOS is up to tokenizer.json's post-processor alone: transformers 5
    drops tokenizer_config.json's add_bos_token/add_eos_token whenever tokenizer.json exists.
    """

    def __init__(self, backend: BackendTokenizer, config: dict, generation_config: dict, chat_template: str | None):
        self._backend = backend
        self.special_tokens: dict[str, str] = {
            name: content for name in NAMED_SPECIAL_TOKENS if (content := _token_content(config.get(name))) is not None
        }
        self._register_special_tokens([*self.special_tokens.values(), *_extra_special_tokens(config)])
        self.chat_template = chat_template
        self.eos_token_ids = self._eos_token_ids(generation_config)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Tokenizer:
        directory = Path(path)
        tokenizer_file = directory / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise FileNotFoundError(f"tokenizer.json not found in {directory}")
        config = _read_json(directory / "tokenizer_config.json")
        # Recent transformers saves the template in its own file, which wins over the config entry.
        template_file = directory / "chat_template.jinja"
        template = template_file.read_text(encoding="utf-8") if template_file.is_file() else config.get("chat_template")
        if isinstance(template, list):  # older multi-template form: [{"name": ..., "template": ...}]
            template = {entry["name"]: entry["template"] for entry in template}.get("default")
        return cls(
            BackendTokenizer.from_file(str(tokenizer_file)),
            config,
            _read_json(directory / "generation_config.json"),
            template,
        )

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        # encode_batch releases the GIL while it works (encode holds it for the whole call), so
        # a server tokenizing in a worker thread keeps its event loop answering.
        return self._backend.encode_batch([text], add_special_tokens=add_special_tokens)[0].ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | None | list[str | None]:
        if isinstance(ids, int):
            return self._backend.id_to_token(ids)
        return [self._backend.id_to_token(i) for i in ids]

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    @property
    def vocab_size(self) -> int:
        """Ids the tokenizer knows, added tokens included (transformers' `len(tokenizer)`)."""
        return self._backend.get_vocab_size(with_added_tokens=True)

    @property
    def bos_token_id(self) -> int | None:
        return self._special_token_id("bos_token")

    @property
    def pad_token_id(self) -> int | None:
        return self._special_token_id("pad_token")

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True, **template_kwargs) -> str:
        """Render `messages` into the prompt text; extra keyword arguments reach the template."""
        chat = _validated_messages(messages)
        # transformers always defines tools and documents, so templates may test `tools is not none`.
        context = {**self.special_tokens, "tools": None, "documents": None, **template_kwargs}
        try:
            return self._compiled_chat_template.render(
                messages=chat, add_generation_prompt=add_generation_prompt, **context
            )
        except jinja2.TemplateError as e:  # raise_exception() in the template, e.g. roles out of order
            raise InvalidRequestError(f"chat template error: {e}", param="messages") from e

    @cached_property
    def _compiled_chat_template(self) -> jinja2.Template:
        if not self.chat_template:
            raise InvalidRequestError(
                "this model's tokenizer has no chat template, so chat messages cannot be turned into a "
                "prompt; send a plain prompt (completions) instead",
                param="messages",
            )
        return _chat_template_environment().from_string(self.chat_template)

    def _special_token_id(self, name: str) -> int | None:
        token = self.special_tokens.get(name)
        return None if token is None else self._backend.token_to_id(token)

    def _register_special_tokens(self, tokens: list[str]) -> None:
        # Like transformers: a special token of the config that tokenizer.json does not list as an
        # added token becomes one, so encode matches it whole and decode can skip it.
        added = {token.content for token in self._backend.get_added_tokens_decoder().values()}
        missing = [token for token in dict.fromkeys(tokens) if token not in added]
        if missing:
            self._backend.add_special_tokens([AddedToken(token, special=True) for token in missing])

    def _eos_token_ids(self, generation_config: dict) -> list[int]:
        # generation_config.json lists every stop token (Llama 3 instruct: end_of_text and eot_id);
        # tokenizer_config.json names only one.
        eos = generation_config.get("eos_token_id")
        if eos is None:
            eos = self._special_token_id("eos_token")
        ids = [eos] if isinstance(eos, int) else list(eos or [])
        return list(dict.fromkeys(ids))


class IncrementalDetokenizer:
    """Turns a stream of generated token ids into text deltas that concatenate to the full decode.

    Each push decodes a short window (tokens already shown, then the unshown ones) and emits what
    the window adds beyond its shown part, as vLLM's `detokenize_incrementally` does: decoding a
    token alone would lose its leading space (SentencePiece) or split a multi-byte character over
    several byte-level tokens. While the window's text ends in U+FFFD, a character is incomplete
    and nothing is emitted.
    """

    # Prompt tokens decoded before the first generated one, enough context for the cases above.
    PROMPT_CONTEXT_TOKENS = 5

    def __init__(self, tokenizer: Tokenizer, prompt_token_ids: Sequence[int], skip_special_tokens: bool = True):
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        # window = shown tokens [0, read) whose text is _shown_text, then tokens not yet shown.
        self._window = list(prompt_token_ids[-self.PROMPT_CONTEXT_TOKENS :])
        self._read = len(self._window)
        self._shown_text = self._decode(self._window)
        self._text = ""

    @property
    def text(self) -> str:
        """All text emitted so far."""
        return self._text

    def push(self, token_id: int) -> str:
        """Add one generated token; return the new text: "" while a character is incomplete, never part of one."""
        self._window.append(token_id)
        window_text = self._decode(self._window)
        if len(window_text) <= len(self._shown_text) or window_text.endswith("\ufffd"):
            return ""
        delta = window_text[len(self._shown_text) :]
        self._window = self._window[self._read :]
        self._read = len(self._window)
        self._shown_text = self._decode(self._window)
        self._text += delta
        return delta

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip_special_tokens)


def _validated_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InvalidRequestError("messages must be a non-empty list of {role, content} objects", param="messages")
    chat = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(
                f"messages[{i}] must be an object with 'role' and 'content', got {type(message).__name__}",
                param="messages",
            )
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidRequestError(f"messages[{i}].role must be a non-empty string", param="messages")
        if "content" not in message:
            raise InvalidRequestError(f"messages[{i}] has no 'content'", param="messages")
        # Keys set to None are dropped, as transformers does: templates handle a missing key but
        # would print "None".
        chat.append(
            {key: value for key, value in message.items() if value is not None}
            | {"content": _message_text(message["content"], i)}
        )
    return chat


def _message_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"messages[{index}].content must be a string or a list of text parts, got {type(content).__name__}",
            param="messages",
        )
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise InvalidRequestError(
                f"messages[{index}].content[{j}] must be {{'type': 'text', 'text': str}}; "
                "only text content is supported",
                param="messages",
            )
        texts.append(part["text"])
    # Newline-joined as vLLM does, so a prompt renders the same on either server.
    return "\n".join(texts)


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks; here it only renders."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller) -> str:
        return caller()


def _raise_exception(message: str):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    # jinja's own tojson escapes HTML characters, which would change the prompt.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@cache
def _chat_template_environment() -> ImmutableSandboxedEnvironment:
    # Chat templates come from the Hub, i.e. are untrusted code: same sandbox and options as transformers.
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _token_content(value: Any) -> str | None:
    # tokenizer_config.json holds a special token as its text or as a serialized AddedToken.
    return value.get("content") if isinstance(value, dict) else value


def _extra_special_tokens(config: dict) -> list[str]:
    extra = config.get("extra_special_tokens") or config.get("additional_special_tokens") or []
    values = extra.values() if isinstance(extra, dict) else extra
    return [content for value in values if (content := _token_content(value)) is not None]
