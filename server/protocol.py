"""Request bodies of the OpenAI API, and how they map onto the engine's `SamplingParams`.

Fields are optional with `None` meaning "the default", because clients send explicit nulls.
vLLM's extra sampling fields (`top_k`, `min_p`, `repetition_penalty`, `stop_token_ids`, ...) are
accepted at the top level, where the `openai` client's `extra_body` puts them. Fields we do not
know are logged and ignored, as vLLM does; known OpenAI fields we do not implement are refused
with 400 rather than silently dropped.
"""
import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shadowkv_engine.sampling_params import SamplingParams

from .errors import APIError

logger = logging.getLogger("shadowkv.server")


class StreamOptions(BaseModel):
    include_usage: bool = False


class GenerationRequest(BaseModel):
    """The fields completions and chat share."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
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

    def check_supported(self):
        if self.model_extra:
            logger.warning("ignoring unknown request fields: %s", sorted(self.model_extra))
        if self.logit_bias:
            raise APIError(400, "logit_bias is not supported by this server.", "logit_bias")
        if self.stream_options is not None and not self.stream:
            raise APIError(400, "stream_options is only allowed when stream is true.",
                           "stream_options")

    @property
    def include_usage_chunk(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    def sampling_params(self, max_tokens: int | None, logprobs: int | None) -> SamplingParams:
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

    def check_supported(self):
        super().check_supported()
        if self.suffix:
            raise APIError(400, "suffix is not supported by this server.", "suffix")
        if self.echo and self.logprobs is not None:
            raise APIError(400, "echo together with logprobs is not supported (it needs prompt "
                                "logprobs).", "echo")

    def single_prompt(self) -> str | list[int]:
        """One prompt: a string, token ids, or a batch holding exactly one of those."""
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                raise APIError(400, f"Only one prompt per request is supported; got {len(prompt)}."
                                    " Send one request per prompt.", "prompt")
            prompt = prompt[0]
        if not prompt:
            raise APIError(400, "The prompt is empty.", "prompt")
        return prompt


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[TextPart] | None = None
    name: str | None = None

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
    top_logprobs: int | None = None
    add_generation_prompt: bool = True
    tools: list[dict] | None = None
    response_format: dict | None = None

    def check_supported(self):
        super().check_supported()
        if self.tools:
            raise APIError(400, "tools are not supported by this server.", "tools")
        if self.response_format and self.response_format.get("type") != "text":
            raise APIError(400, "Only response_format {\"type\": \"text\"} is supported.",
                           "response_format")
        if self.top_logprobs is not None and not self.logprobs:
            raise APIError(400, "top_logprobs requires logprobs to be true.", "top_logprobs")

    @property
    def completion_limit(self) -> int | None:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens

    @property
    def num_top_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None
