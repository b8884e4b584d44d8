"""Errors as the HTTP service answers them: OpenAI-style bodies ``{"error": {"message", "type", "param",
"code"}}``, an ``AssistantError``'s own status, validation errors as 400 naming the field, and never a
traceback (unexpected errors are logged and answered with a generic 500)."""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import AssistantError, QueueFullError
from ..guards import encode_json
from ..schemas import ErrorResponse


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 408, 413, 415, 422, 429, 500, 503, 504)
}


# ----------------------------------------------------------------------- errors


class APIError(Exception):
    """An HTTP error answered with the OpenAI-style body (raised by the routes themselves)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or error_type(status)
        self.headers = headers


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status == 504:
        return "timeout_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class SafeJSONResponse(JSONResponse):
    """JSON that never fails to encode (an error message may quote what the client sent)."""

    def render(self, content: Any) -> bytes:
        return encode_json(content)


def error_response(exc: APIError) -> JSONResponse:
    return SafeJSONResponse(error_body(exc.message, exc.type, exc.code, exc.param), exc.status, headers=exc.headers)


def error_code(exc: AssistantError) -> str:
    """``InputTooLongError`` -> ``"input_too_long"``; the base class -> ``"assistant_error"``."""
    if type(exc) is AssistantError:
        return "assistant_error"
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def from_assistant_error(exc: AssistantError) -> APIError:
    headers = None
    if isinstance(exc, QueueFullError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return APIError(exc.http_status, str(exc), code=error_code(exc), headers=headers)


def validation_message(errors: list[dict]) -> tuple[str, str | None, str]:
    """(message, param, code) for a RequestValidationError: every problem, naming its field."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "invalid JSON")
        position = first.get("loc", ("body", None))[-1]
        return f"the request body is not valid JSON: {detail} (at character {position})", None, "invalid_json"
    if first.get("loc") == ("body",) and isinstance(first.get("input"), (bytes, str)):
        return "the request body must be a JSON object (send it with Content-Type: application/json)", None, "invalid_body"
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more problems")
    param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    return "invalid request: " + "; ".join(parts), param, "invalid_request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(AssistantError)
    async def assistant_error(request: Request, exc: AssistantError) -> JSONResponse:
        return error_response(from_assistant_error(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param, code = validation_message(list(exc.errors()))
        return error_response(APIError(400, message, code=code, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        error = APIError(exc.status_code, message, code=codes.get(exc.status_code), headers=exc.headers)
        return error_response(error)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after answering, so uvicorn logs the traceback; the client sees none.
        return error_response(APIError(500, "internal server error (details are in the server log)"))


def timeout_error(seconds: float) -> APIError:
    return APIError(504, f"the request took longer than this server's limit of {seconds:g} s", code="timeout")
