"""The one place an exception becomes an HTTP answer with the ``{"detail": {...}}`` envelope."""

from __future__ import annotations

import json
import logging
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


def envelope_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {"detail": {"error": code, "message": message, **extra}}
    return Response(
        json.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def vault_error_response(exc: VaultError) -> Response:
    body = json.dumps(exc.envelope(), default=str)
    # Marks the answer as the vault's own (not an upstream's), which matters on the transparent
    # proxy where both share one response channel.
    headers = {**exc.headers, "X-Vaultgate-Error": exc.code}
    return Response(body, status_code=exc.status, headers=headers, media_type="application/json")


def storage_error_response(exc: DBAPIError) -> Response:
    """The database refused or could not be reached: a 409 or a 503, never a 500."""
    if isinstance(exc, IntegrityError):
        return envelope_response(409, "conflict", "the change conflicts with another one; retry")
    log.error("storage error: %s", type(exc.orig).__name__ if exc.orig else type(exc).__name__)
    return envelope_response(
        503,
        "storage_unavailable",
        "the vault's database cannot be used right now; retry later",
        headers={"Retry-After": "1"},
    )


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def validation_response(exc: RequestValidationError) -> Response:
    # Built from the location and pydantic's message only: the rejected input (which may be a
    # credential) is never echoed back.
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid"}
    field = _field_of(tuple(first.get("loc", ())))
    msg = str(first.get("msg", "invalid"))
    if first.get("type") == "json_invalid":
        return envelope_response(400, "invalid_json", "the body is not valid JSON", field="body")
    if first.get("type") == "extra_forbidden":
        msg = "unknown field"
    # 400 when the body as a whole is not an object; 422 when one of its fields is wrong.
    whole_body = field == "body" and first.get("type") in {"model_attributes_type", "dict_type"}
    status = 400 if whole_body else 422
    return envelope_response(status, "validation_error", f"{field}: {msg}"[:500], field=field)


def _sdk_path(request: Request) -> str:
    path: str = request.scope["path"]
    root = request.scope.get("root_path") or ""
    return path[len(root) :] if root and path.startswith(root) else path


def install(app: FastAPI) -> None:
    @app.exception_handler(VaultError)
    async def _vault(_: Request, exc: VaultError) -> Response:
        return vault_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return validation_response(exc)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404 and _sdk_path(request).startswith("/sdk/"):
            route, message = sdk_unserved.describe(request.method, _sdk_path(request))
            return envelope_response(501, "not_implemented", message, route=route)
        code = _HTTP_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers) if exc.headers else None
        return envelope_response(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(DecryptionError)
    async def _sealed(_: Request, exc: DecryptionError) -> Response:
        log.error("a sealed secret could not be opened (wrong master key or tampered row)")
        return envelope_response(500, "internal_error", "a stored secret could not be opened")

    @app.exception_handler(DBAPIError)
    async def _storage(_: Request, exc: DBAPIError) -> Response:
        return storage_error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.error("unexpected error: %s", type(exc).__name__)
        return envelope_response(500, "internal_error", "internal error")
