"""Request bodies of the OpenAI API, and how they map onto the engine's `SamplingParams`.

Fields are optional with `None` meaning "the default", because clients send explicit nulls.
vLLM's extra sampling fields (`top_k`, `min_p`, `repetition_penalty`, `stop_token_ids`, ...) are
accepted at the top level, where the `openai` client's `extra_body` puts them. Fields we do not
know are logged and ignored, as vLLM does; known OpenAI fields we do not implement are refused
with 400 rather than silently dropped.

What can be checked without the engine is checked here, so that the error names the field:
finite numbers (JSON's 1e309 parses as infinity), token ids that are integers (not booleans or
floats) inside the vocabulary, chat roles, and the server's limits on `n`, stop strings and
batches. The engine's `SamplingParams` checks the ranges.
"""
import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from shadowkv_engine.errors import InvalidRequestError
from shadowkv_engine.sampling_params import SamplingParams

from .errors import APIError, clip
from .options import ServerOptions

logger = logging.getLogger("shadowkv.server")


class StreamOptions(BaseModel):
    include_usage: bool = False


def _is_text(value) -> bool:
    """A string the tokenizer can take: JSON escapes can smuggle in unpaired surrogates
    ("\\ud800"), which are no Unicode text."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_token_ids(value) -> bool:
    return isinstance(value, list) and all(type(t) is int for t in value)


def check_token_ids(ids: list[int], vocab_size: int, param: str):
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise APIError(400, f"{param} must hold token ids in [0, {vocab_size}); got "
                            f"{clip(bad[:5], 100)}.", param)


class GenerationRequest(BaseModel):
    """The fields completions and chat share."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: str | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[StrictInt] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    logit_bias: dict[str, float] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    # Engine errors name SamplingParams' fields; where the request calls one otherwise, the
    # request's name is the one to report.
    def _param_names(self) -> dict[str, str]:
        return {}

    def check_supported(self, options: ServerOptions):
        if self.model_extra:
            logger.warning("ignoring unknown request fields: %s", clip(sorted(self.model_extra)))
        if self.n is not None and self.n > options.max_n:
            raise APIError(400, f"n must be at most {options.max_n} on this server, got "
                                f"{self.n}.", "n")
        stops = [self.stop] if isinstance(self.stop, str) else self.stop or []
        if len(stops) > options.max_stop_strings:
            raise APIError(400, f"At most {options.max_stop_strings} stop strings are allowed; "
                                f"got {len(stops)}.", "stop")
        if any(len(stop) > options.max_stop_string_chars for stop in stops):
            raise APIError(400, f"A stop string may be at most {options.max_stop_string_chars} "
                                "characters long.", "stop")
        if self.logit_bias:
            raise APIError(400, "logit_bias is not supported by this server.", "logit_bias")
        if self.stream_options is not None and not self.stream:
            raise APIError(400, "stream_options is only allowed when stream is true.",
                           "stream_options")

    def check_token_ids(self, vocab_size: int):
        check_token_ids(self.stop_token_ids or [], vocab_size, "stop_token_ids")

    @property
    def include_usage_chunk(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    def sampling_params(self, max_tokens: int | None, logprobs: int | None) -> SamplingParams:
        try:
            return self._sampling_params(max_tokens, logprobs)
        except InvalidRequestError as exc:
            name = self._param_names().get(exc.param)
            if name is None:
                raise
            raise InvalidRequestError(str(exc).replace(exc.param, name), name) from None

    def _sampling_params(self, max_tokens: int | None, logprobs: int | None) -> SamplingParams:
        def pick(value, default):
            return default if value is None else value

        return SamplingParams(
            n=pick(self.n, 1),
            temperature=pick(self.temperature, 1.0),
            top_p=pick(self.top_p, 1.0),
            top_k=pick(self.top_k, -1),
            min_p=pick(self.min_p, 0.0),
            seed=self.seed,
            max_tokens=max_tokens,
            min_tokens=self.min_tokens,
            stop=self.stop,
            stop_token_ids=self.stop_token_ids,
            ignore_eos=self.ignore_eos,
            include_stop_str_in_output=self.include_stop_str_in_output,
            logprobs=logprobs,
            presence_penalty=pick(self.presence_penalty, 0.0),
            frequency_penalty=pick(self.frequency_penalty, 0.0),
            repetition_penalty=pick(self.repetition_penalty, 1.0),
            skip_special_tokens=self.skip_special_tokens,
        )


class CompletionRequest(GenerationRequest):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = 16  # OpenAI's default for the legacy endpoint
    logprobs: int | None = None
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, value):
        # One message instead of pydantic's one per member of the union; and no booleans or
        # floats taken for token ids.
        if _is_text(value) or _is_token_ids(value) or (isinstance(value, list) and (
                all(map(_is_text, value)) or all(map(_is_token_ids, value)))):
            return value
        raise ValueError("prompt must be a string (valid Unicode), a list of integer token ids, "
                         "or a list of strings or of token id lists (a batch)")

    def check_supported(self, options: ServerOptions):
        super().check_supported(options)
        if self.best_of is not None and self.best_of != (self.n or 1):
            raise APIError(400, "best_of other than n is not supported by this server (as in "
                                "vLLM V1); use n.", "best_of")
        if len(self.prompts()) > options.max_batch_prompts:
            raise APIError(400, f"At most {options.max_batch_prompts} prompts are allowed in one "
                                f"request; got {len(self.prompts())}.", "prompt")
        if self.suffix:
            raise APIError(400, "suffix is not supported by this server.", "suffix")
        if self.echo and self.logprobs is not None:
            raise APIError(400, "echo together with logprobs is not supported (it needs prompt "
                                "logprobs).", "echo")

    def prompts(self) -> list[str | list[int]]:
        """The batch: each prompt a string or token ids."""
        prompt = self.prompt
        if isinstance(prompt, str) or not prompt or not isinstance(prompt[0], (str, list)):
            prompts = [prompt]
        else:
            prompts = prompt
        if not all(prompts):
            raise APIError(400, "The prompt is empty.", "prompt")
        return prompts

    def check_token_ids(self, vocab_size: int):
        super().check_token_ids(vocab_size)
        for prompt in self.prompts():
            if isinstance(prompt, list):
                check_token_ids(prompt, vocab_size, "prompt")


def _unicode(value):
    if value is not None and not _is_text(value):
        raise ValueError("not valid Unicode text (an unpaired surrogate escape)")
    return value


class TextPart(BaseModel):
    type: Literal["text"]
    text: str

    @field_validator("text")
    @classmethod
    def _check_text(cls, value):
        return _unicode(value)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    @field_validator("content", "name")
    @classmethod
    def _check_text(cls, value):
        return value if isinstance(value, list) else _unicode(value)

    def as_template_input(self) -> dict:
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        message = {"role": self.role, "content": content or ""}
        if self.name:
            message["name"] = self.name
        return message


class ChatCompletionRequest(GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = None  # deprecated by OpenAI in favour of max_completion_tokens
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    add_generation_prompt: bool = True
    tools: list[dict] | None = None
    tool_choice: str | dict | None = None
    response_format: dict | None = None

    def _param_names(self) -> dict[str, str]:
        limit = "max_completion_tokens" if self.max_completion_tokens is not None else \
            "max_tokens"
        return {"max_tokens": limit, "logprobs": "top_logprobs"}

    def check_supported(self, options: ServerOptions):
        super().check_supported(options)
        if self.tools:
            raise APIError(400, "tools are not supported by this server.", "tools")
        if self.tool_choice not in (None, "none"):
            raise APIError(400, "tool_choice is not supported by this server (it has no tool "
                                "calling).", "tool_choice")
        if self.response_format and self.response_format.get("type") != "text":
            raise APIError(400, "Only response_format {\"type\": \"text\"} is supported.",
                           "response_format")
        if self.top_logprobs is not None and not self.logprobs:
            raise APIError(400, "top_logprobs requires logprobs to be true.", "top_logprobs")

    @property
    def completion_limit_param(self) -> str:
        return self._param_names()["max_tokens"]

    @property
    def completion_limit(self) -> int | None:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens

    @property
    def num_top_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None
