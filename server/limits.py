"""Refusing what is too big before paying for it: the body before it is read, a prompt before it
is tokenized, and, once tokenized, a prompt or completion over the context length."""
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shadowkv_engine.errors import PromptTooLongError

from .errors import error_response

# Far more text than any tokenizer packs into one token on average over a whole prompt (English
# runs at about 4 characters a token). A prompt with more characters than max_model_len times
# this cannot fit, so it is refused before tokenizing it would cost seconds and memory.
MAX_CHARS_PER_TOKEN = 32


def _too_large(limit: int) -> str:
    return f"The request body is larger than this server's limit of {limit} bytes."


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`: at once when Content-Length says so, else as soon as the
    bytes received pass the limit (a chunked upload), before the rest is read or parsed."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((value for name, value in scope["headers"] if name == b"content-length"),
                      None)
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await error_response(413, _too_large(self.max_bytes))(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI lets an HTTPException raised while reading the body through, so
                    # the app's handler answers it in the OpenAI shape.
                    raise HTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, limited_receive, send)


def check_prompt_chars(chars: int, max_model_len: int, what: str):
    """Refuses a prompt (`what`: "prompt" or "messages") too long to fit whatever the tokenizer
    makes of it."""
    if chars > max_model_len * MAX_CHARS_PER_TOKEN:
        error = PromptTooLongError(chars // MAX_CHARS_PER_TOKEN, max_model_len, what)
        error.args = (f"This model's maximum context length is {max_model_len} tokens. However, "
                      f"the {what} has {chars} characters, far more than fit in that many tokens. "
                      f"Please reduce the length of the {what}.",)
        raise error


def check_context_length(prompt_len: int, max_tokens: int | None, max_model_len: int,
                         what: str, max_tokens_param: str):
    """The engine's own check, done here so the error names the field to change: the prompt
    (`what`: "prompt" or "messages") when it alone does not fit, else the completion limit."""
    if prompt_len >= max_model_len:
        raise PromptTooLongError(prompt_len + (max_tokens or 0), max_model_len, what)
    if max_tokens is not None and prompt_len + max_tokens > max_model_len:
        error = PromptTooLongError(prompt_len + max_tokens, max_model_len, what)
        error.args = (
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {prompt_len + max_tokens} tokens ({prompt_len} in the {what}, "
            f"{max_tokens} in the completion). Please reduce the length of the {what} or "
            f"{max_tokens_param}.",)
        error.param = max_tokens_param
        raise error
