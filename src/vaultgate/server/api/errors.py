"""The one place an exception becomes an HTTP answer with the ``{"detail": {...}}`` envelope.

`error_answer` is that place. Every surface calls it: FastAPI's exception handlers (management
API, portal JSON), the hot path's front door (SDK API, transparent proxy), the request-size and
WebSocket refusals written straight to ASGI, the connection-level answers written to the socket,
and the portal's error pages (which show its status and message as a page instead).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from vaultgate.server.api import sdk_unserved
from vaultgate.server.crypto import DecryptionError
from vaultgate.server.errors import VaultError

log = logging.getLogger("vaultgate.api")

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    400: "bad_request",
    401: "invalid_key",
    403: "forbidden",
    413: "body_too_large",
    415: "unsupported_media_type",
}


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """What the client is told: status, the envelope's ``detail``, and extra headers."""

    status: int
    detail: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return str(self.detail["error"])

    @property
    def message(self) -> str:
        return str(self.detail["message"])

    def body(self) -> bytes:
        return json.dumps({"detail": self.detail}, default=str).encode()

    def response(self) -> Response:
        return Response(
            self.body(),
            status_code=self.status,
            headers=self.headers or None,
            media_type="application/json",
        )


def _plain(status: int, code: str, message: str, **extra: Any) -> ErrorAnswer:
    return ErrorAnswer(status, {"error": code, "message": message, **extra})


def error_answer(exc: BaseException, *, method: str = "", path: str = "") -> ErrorAnswer:
    """The answer for ``exc``, whichever surface raised it (``path`` as the app routes it).

    Every one carries X-Vaultgate-Error, its code: it marks the answer as the vault's own (not an
    upstream's), which matters on the transparent proxy where both share one response channel,
    for a database that is away or an unforeseen error as much as for a refusal.
    """
    answer = _answer_for(exc, method, path)
    answer.headers.setdefault("X-Vaultgate-Error", answer.code)
    return answer


def _answer_for(exc: BaseException, method: str, path: str) -> ErrorAnswer:
    if isinstance(exc, VaultError):
        return ErrorAnswer(exc.status, exc.envelope()["detail"], dict(exc.headers))
    if isinstance(exc, RequestValidationError):
        return _validation(exc)
    if isinstance(exc, HTTPException):
        return _http(exc, method, path)
    if isinstance(exc, DBAPIError):
        return _storage(exc)
    if isinstance(exc, DecryptionError):
        log.error("a sealed secret could not be opened (wrong master key or tampered row)")
        return _plain(500, "internal_error", "a stored secret could not be opened")
    log.error("unexpected error on %s: %s", path or "?", type(exc).__name__)
    return _plain(500, "internal_error", "internal error")


def error_response(exc: BaseException, *, method: str = "", path: str = "") -> Response:
    return error_answer(exc, method=method, path=path).response()


def _http(exc: HTTPException, method: str, path: str) -> ErrorAnswer:
    if exc.status_code == 404 and path.startswith("/sdk/"):
        route, message = sdk_unserved.describe(method, path)
        return _plain(501, "not_implemented", message, route=route)
    code = _HTTP_CODES.get(exc.status_code, "error")
    headers = dict(exc.headers) if exc.headers else {}
    return ErrorAnswer(exc.status_code, {"error": code, "message": str(exc.detail)}, headers)


def _storage(exc: DBAPIError) -> ErrorAnswer:
    """The database refused or could not be reached: a 409 or a 503, never a 500."""
    if isinstance(exc, IntegrityError):
        return _plain(409, "conflict", "the change conflicts with another one; retry")
    log.error("storage error: %s", type(exc.orig).__name__ if exc.orig else type(exc).__name__)
    answer = _plain(
        503, "storage_unavailable", "the vault's database cannot be used right now; retry later"
    )
    return ErrorAnswer(answer.status, answer.detail, {"Retry-After": "1"})


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def _validation(exc: RequestValidationError) -> ErrorAnswer:
    # Built from the location and pydantic's message only: the rejected input (which may be a
    # credential) is never echoed back.
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid"}
    field_name = _field_of(tuple(first.get("loc", ())))
    msg = str(first.get("msg", "invalid"))
    if first.get("type") == "json_invalid":
        return _plain(400, "invalid_json", "the body is not valid JSON", field="body")
    if first.get("type") == "extra_forbidden":
        msg = "unknown field"
    # 400 when the body as a whole is not an object; 422 when one of its fields is wrong.
    whole_body = field_name == "body" and first.get("type") in {
        "model_attributes_type",
        "dict_type",
    }
    status = 400 if whole_body else 422
    return _plain(status, "validation_error", f"{field_name}: {msg}"[:500], field=field_name)


def envelope_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """An answer that is not an error of the tree (health's "not ready"), in the same envelope."""
    return ErrorAnswer(
        status, {"error": code, "message": message, **extra}, headers or {}
    ).response()


def vault_error_response(exc: VaultError) -> Response:
    """`error_response` of a tree error (the name other modules have called it by)."""
    return error_response(exc)


def _routed_path(request: Request) -> str:
    path: str = request.scope["path"]
    root = request.scope.get("root_path") or ""
    return path[len(root) :] if root and path.startswith(root) else path


def install(app: FastAPI) -> None:
    async def answer(request: Request, exc: Exception) -> Response:
        return error_response(exc, method=request.method, path=_routed_path(request))

    # `Exception` last: Starlette serves it from its outermost layer, after the others missed.
    for kind in (VaultError, RequestValidationError, HTTPException, DecryptionError, DBAPIError):
        app.add_exception_handler(kind, answer)
    app.add_exception_handler(Exception, answer)
