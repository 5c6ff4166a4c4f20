"""One provider call as the application described it, checked, and turned into requests.

``Call`` is built and validated before any network I/O; the async and sync clients then only move
the requests it builds. Nothing here holds a credential: that arrives later, in ``_protocol``.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import httpx

from ._config import check_caller, is_loopback
from ._errors import AlterValueError, ProviderAPIError, ProviderUnauthorizedError, redact

# Headers a caller may not set in proxy or stream mode: the vault owns authentication there.
RESERVED_HEADERS: Final = frozenset(
    {
        "host",
        "authorization",
        "proxy-authorization",
        "authentication",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-amz-security-token",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-http-method",
        "x-http-method-override",
        "x-method-override",
    }
)
MAX_URL_LENGTH: Final = 65_536

ParamValue = str | int | float | bool | None
Params = Mapping[str, ParamValue | list[ParamValue]]


def _check_headers(headers: Mapping[str, str] | None, *, reserved: frozenset[str]) -> None:
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise AlterValueError("header names and values must be strings", code="invalid_header")
        if any(ch in value for ch in "\r\n\0"):
            raise AlterValueError(f"header {name!r} contains CR, LF or NUL", code="invalid_header")
        if name.lower() in reserved or name.lower().startswith("x-vaultgate-"):
            raise AlterValueError(f"header {name!r} is set by the vault", code="reserved_header")


# URLs checked before, by their text: an ``httpx.URL`` is immutable, and parsing one was a
# measurable share of a ``request()``'s client CPU for an application calling the same URLs.
# Only URLs without a query are kept: a query may carry a key the caller put there itself.
_CHECKED: dict[str, httpx.URL] = {}
MAX_CHECKED: Final = 256


def _check_url(url: str | httpx.URL) -> httpx.URL:
    if isinstance(url, str) and (known := _CHECKED.get(url)) is not None:
        return known
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        # Not chained: httpx's message quotes the URL, which may hold userinfo.
        raise AlterValueError("url is not a valid URL", code="invalid_url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise AlterValueError("url must be an http(s) URL with a host", code="invalid_url")
    if parsed.userinfo:
        raise AlterValueError("url must not carry credentials", code="invalid_url")
    if isinstance(url, str) and not parsed.query:
        if len(_CHECKED) >= MAX_CHECKED:
            _CHECKED.clear()  # a bounded memo, not a record: start over
        _CHECKED[url] = parsed
    return parsed


@dataclass(frozen=True, slots=True)
class Call:
    """A provider call: method, URL and what the application wants sent with it."""

    method: str
    url: httpx.URL
    grant_id: str
    reason: str | None = None
    json: Any = None
    params: Params | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    timeout: float | None = None
    caller: str | None = None

    @classmethod
    def make(
        cls,
        method: str,
        url: str | httpx.URL,
        *,
        grant_id: str,
        reason: str | None = None,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        timeout: float | None = None,
        caller: str | None = None,
        reserved: frozenset[str] = frozenset(),
    ) -> Call:
        """Validate the application's arguments; raise ``AlterValueError`` on the first fault."""
        if not isinstance(grant_id, str) or not grant_id:
            raise AlterValueError("grant_id is required", code="invalid_grant_id")
        if json is not None and content is not None:
            raise AlterValueError("pass json or content, not both", code="invalid_body")
        _check_headers(headers, reserved=reserved)
        return cls(
            method=str(method).upper(),
            url=_check_url(url),
            grant_id=grant_id,
            reason=reason,
            json=json,
            params=params,
            headers=dict(headers or {}),
            content=content.encode() if isinstance(content, str) else content,
            timeout=timeout,
            caller=check_caller(caller),
        )

    def require_https(self) -> None:
        """The retrieve-mode rule: the credential travels only over TLS, or to loopback."""
        if self.url.scheme != "https" and not is_loopback(self.url.host):
            raise AlterValueError("url must use https unless it is loopback", code="invalid_url")
        if len(str(self.full_url())) > MAX_URL_LENGTH:
            raise AlterValueError("url is too long", code="invalid_url")

    def full_url(self) -> httpx.URL:
        """The URL with ``params`` merged in, as the provider will see it before injection."""
        if not self.params:
            return self.url
        return self.url.copy_merge_params(dict(self.params))

    def body_bytes(self) -> bytes:
        if self.json is not None:
            return jsonlib.dumps(self.json, separators=(",", ":"), allow_nan=False).encode()
        return self.content or b""

    def provider_request(self, defaults: httpx.Headers, timeout: dict[str, Any]) -> httpx.Request:
        """The request to the provider, before the vault's injection is applied.

        ``defaults`` are the provider client's headers (the caller's own win, as in httpx's
        ``build_request``); ``timeout`` the client's, unless the call names its own.
        """
        headers = dict(self.headers)
        if self.json is not None:
            headers.setdefault("Content-Type", "application/json")
        merged = defaults.copy()
        merged.update(headers)
        if self.timeout is not None:
            timeout = httpx.Timeout(self.timeout).as_dict()
        return httpx.Request(
            self.method,
            self.full_url(),
            headers=merged,
            content=self.body_bytes() or None,
            extensions={"timeout": timeout},
        )

    def stream_request(
        self, base_url: str, api_key: str, *, user_agent: str, timeout: float
    ) -> httpx.Request:
        """The transparent-proxy request: the vault injects, so the credential never comes here."""
        target = self.full_url()
        path = target.raw_path.decode("ascii").lstrip("/")
        url = f"{base_url}/proxy/{quote(self.grant_id, safe='')}/{path}"
        headers = {
            "User-Agent": user_agent,
            **self.headers,
            "Authorization": f"Bearer {api_key}",
            "X-Vaultgate-Target": f"{target.scheme}://{target.netloc.decode('ascii')}",
        }
        if self.json is not None:
            headers.setdefault("Content-Type", "application/json")
        if self.reason is not None:
            headers["X-Vaultgate-Reason"] = self.reason
        if self.caller is not None:
            headers["X-Vaultgate-Caller"] = self.caller
        seconds = self.timeout if self.timeout is not None else timeout
        extensions = {"timeout": httpx.Timeout(seconds).as_dict()}
        body = self.body_bytes() or None
        return httpx.Request(self.method, url, headers=headers, content=body, extensions=extensions)


def provider_error(
    response: httpx.Response, secrets: tuple[str, ...] = ()
) -> ProviderAPIError | None:
    """The error to raise for a provider answer >= 400 (its body must have been read)."""
    status = response.status_code
    if status < 400:
        return None
    body = redact(response.content.decode("utf-8", errors="replace"), secrets)
    challenge = response.headers.get("www-authenticate", "")
    unauthorized = status == 401 and "insufficient_scope" not in challenge
    cls = ProviderUnauthorizedError if unauthorized else ProviderAPIError
    return cls(
        f"the provider answered HTTP {status}",
        status_code=status,
        response_body=body,
        response=response,
        request_id=response.headers.get("x-request-id"),
    )
