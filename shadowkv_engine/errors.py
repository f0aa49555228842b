"""Exceptions the engine raises for bad input; the server maps each to an HTTP status."""


class InvalidRequestError(ValueError):
    """A request parameter is invalid (HTTP 400). `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class PromptTooLongError(InvalidRequestError):
    """The prompt plus the requested tokens exceed the model's context length (HTTP 400)."""

    def __init__(self, requested: int, limit: int, what: str = "prompt"):
        super().__init__(
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{requested} tokens ({what}). Please reduce the length of the {what}.",
            param="messages" if what == "messages" else "prompt",
        )
        self.requested = requested
        self.limit = limit


class RequestTooLargeError(InvalidRequestError):
    """The request can never fit the KV pools of this engine, whatever else is running (HTTP 400)."""


class QueueFullError(RuntimeError):
    """The waiting queue is at `max_queued_requests` (HTTP 429)."""


class RequestFailedError(RuntimeError):
    """Processing this one request failed inside the engine, which goes on (HTTP 500)."""


class EngineDeadError(RuntimeError):
    """The engine loop stopped on an internal error; the server answers 500/503."""
