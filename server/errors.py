"""Every failure leaves the server in OpenAI's error shape, `{"error": {message, type, param, code}}`.

Clients (the `openai` package among them) turn the status code into an exception class and show
`message`, so each handler below says what was wrong in words a caller can act on.
"""
import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shadowkv_engine.distributed import NoReplicaReadyError, ReplicaDiedError  # no Ray import
from shadowkv_engine.errors import EngineDeadError, InvalidRequestError, QueueFullError

logger = logging.getLogger("shadowkv.server")

# Seconds a client told "queue full" should wait; one engine step frees slots far sooner, but a
# shorter hint makes retrying clients hammer a saturated server.
RETRY_AFTER_SECONDS = 1
# User-supplied text in a log line is cut to this many characters: one request must not be
# able to write megabytes into the log.
LOG_TEXT_CHARS = 300
MAX_LISTED_PROBLEMS = 5  # of a body with thousands of bad values, the first few say enough

ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestTooLargeError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None
    code: int


class ErrorResponse(BaseModel):
    """The body of every error response (for the OpenAPI schema)."""

    error: ErrorInfo


# For the OpenAPI schema of the generation endpoints: what they answer besides 200.
ERROR_RESPONSES = {
    400: {"model": ErrorResponse, "description": "Invalid request (bad field, prompt too long)"},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key (with --api-key)"},
    404: {"model": ErrorResponse, "description": "Unknown model"},
    413: {"model": ErrorResponse, "description": "Request body over --max-request-body-bytes"},
    429: {"model": ErrorResponse, "description": "Request queue full; see Retry-After"},
    500: {"model": ErrorResponse, "description": "Internal error (details in the server log)"},
    503: {"model": ErrorResponse, "description": "Starting, draining or failed"},
}


def clip(text: object, limit: int = LOG_TEXT_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class APIError(Exception):
    """An error the server itself decides on (unknown model, not ready, unsupported option)."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.param = param
        self.headers = headers


def error_body(status: int, message: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "APIError"),
                      "param": param, "code": status}}


def error_response(status: int, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """The message lists every problem with its path; `param` is the first one's top-level
    field (None for a body that is not JSON, whose "location" is a character offset)."""
    parts, param = [], None
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error')} at "
                         f"character {err['loc'][-1]})")
            continue
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        param = param or (loc[0] if loc else None)
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    if len(parts) > MAX_LISTED_PROBLEMS:
        parts[MAX_LISTED_PROBLEMS:] = [f"and {len(parts) - MAX_LISTED_PROBLEMS} more"]
    return "Invalid request: " + "; ".join(parts), param


def install_error_handlers(app: FastAPI):
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return error_response(exc.status, str(exc), exc.param, exc.headers)

    # FastAPI answers malformed bodies with 422 and its own shape; OpenAI clients expect 400.
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return error_response(400, message, param)

    @app.exception_handler(InvalidRequestError)
    async def invalid_request(request: Request, exc: InvalidRequestError):
        return error_response(400, str(exc), exc.param)

    @app.exception_handler(QueueFullError)
    async def queue_full(request: Request, exc: QueueFullError):
        message = str(exc) or "The server's request queue is full; retry later."
        return error_response(429, message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.exception_handler(EngineDeadError)
    async def engine_dead(request: Request, exc: EngineDeadError):
        logger.error("engine is dead: %s", clip(exc))
        return error_response(500, "The engine stopped on an internal error; see the server log.")

    # Data-parallel replicas (the most specific class's handler wins over EngineDeadError's).
    @app.exception_handler(ReplicaDiedError)
    async def replica_died(request: Request, exc: ReplicaDiedError):
        return error_response(500, str(exc))

    @app.exception_handler(NoReplicaReadyError)
    async def no_replica_ready(request: Request, exc: NoReplicaReadyError):
        return error_response(503, f"Service unavailable: {exc}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


def internal_error_message(request_id: str | None, exc: BaseException | None = None) -> str:
    """What a client learns of an unexpected failure: nothing internal, an id to report; or,
    when a replica died, the router's own words saying so."""
    if isinstance(exc, ReplicaDiedError):
        return str(exc)
    reference = f" (request {request_id})" if request_id else ""
    return f"Internal server error{reference}; the details are in the server log."


def log_internal_error(exc: BaseException, request_id: str | None):
    # The traceback shows where; the exception's own text may quote the request, so it is cut.
    logger.error("request %s failed: %s: %s\n%s", request_id or "-", type(exc).__name__, clip(exc),
                 "".join(traceback.format_tb(exc.__traceback__)).rstrip())


class InternalErrorMiddleware:
    """An unexpected exception becomes a 500 that echoes nothing of it, logged here with the
    request id; the server goes on. (Starlette's own handler for this re-raises, and uvicorn
    then logs the exception's full text.)"""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            request_id = scope.get("state", {}).get("request_id")
            log_internal_error(exc, request_id)
            if not started:  # else the status line is gone; the connection just ends
                await error_response(500, internal_error_message(request_id))(scope, receive,
                                                                              send)
