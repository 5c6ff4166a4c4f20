"""The Alter SDK protocol, sans I/O: signed vault requests in, typed answers out.

The async and sync clients share every byte of it: they build requests here, send them with
their own httpx client, and hand the answers back here. Protocol sections refer to
``reference/alter-sdk-protocol.md``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Final, TypeVar

import httpx

from vaultgate.injection.rules import InjectionRuleError
from vaultgate.injection.signing import sign_request, signing_key
from vaultgate.injection.wire import Wired, apply_wire, from_wire, injected_names

from ._calls import Call, provider_error
from ._errors import REDACTED, BackendError, error_from_response
from ._http11 import Reply
from ._models import PendingApproval
from ._shapes import ShapeError, parse

T = TypeVar("T")

USER_AGENT: Final = "vaultgate-python/0.1"
TOKEN_PATH: Final = "/sdk/token"
PROXY_PATH: Final = "/sdk/proxy"
AUDIT_PATH: Final = "/sdk/oauth/audit/api-call"
BATCH_PATH: Final = "/sdk/oauth/audit/api-calls"  # vaultgate's own: several reports at once

_B64: Final = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_PUBLIC_FIELDS: Final = frozenset({"region", "service"})
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The proxy answer carries the decoded body, so headers describing the original framing are stale.
_FRAMING_HEADERS: Final = frozenset({"content-encoding", "content-length", "transfer-encoding"})

# A vault answer read whole: the light lanes' `Reply`, or httpx's response (a client given its
# own transport, or a content-encoded answer). Both give status_code, content and headers.
VaultAnswer = Reply | httpx.Response


def no_cookies() -> CookieJar:
    """A jar that keeps nothing: a session cookie set in answer to one grant's call must not
    ride along on the next call, which may use another grant (or go to the vault)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def compact_json(value: Any) -> bytes:
    """The one serialisation of a JSON body: the bytes hashed are the bytes sent (protocol 2.2)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _new_nonce() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True, repr=False)
class Signer:
    """Builds HMAC-signed requests to the vault for one API key and caller identity."""

    api_key: str
    caller: str | None = None
    caller_type: str = "service"
    clock: Callable[[], float] = time.time
    nonce: Callable[[], str] = _new_nonce
    _signing_key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_signing_key", signing_key(self.api_key))

    def __repr__(self) -> str:
        return f"Signer(api_key={REDACTED!r}, caller={self.caller!r})"

    def default_headers(self) -> dict[str, str]:
        """Headers on every vault request (protocol 1.3); the key goes to the vault only."""
        headers = {"x-api-key": self.api_key, "User-Agent": USER_AGENT}
        if self.caller is not None:
            headers |= {"X-Alter-Caller": self.caller, "X-Alter-Caller-Type": self.caller_type}
        return headers

    def build(
        self,
        client: httpx.Client | httpx.AsyncClient,
        path: str,
        payload: Mapping[str, Any] | bytes | None,
        *,
        method: str = "POST",
        caller: str | None = None,
        timeout: float | None = None,
        url: httpx.URL | None = None,
    ) -> httpx.Request:
        """A signed ``method path``; ``path`` (with its query) is the SDK path that is signed.

        A ``None`` payload sends no body, as the official client's GET and DELETE calls do;
        ``bytes`` are a body already serialised (outcome reports, see ``_audit.scrubbed``).
        ``url``, when given, is the client's base URL plus ``path``, parsed once by the caller.
        """
        if payload is None or isinstance(payload, bytes):
            body = payload or b""
        else:
            body = compact_json(payload)
        who = caller if caller is not None else self.caller
        headers = self.default_headers()
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if who is not None:
            headers |= {"X-Alter-Caller": who, "X-Alter-Caller-Type": self.caller_type}
        headers |= sign_request(
            self.api_key,
            method,
            path,
            body,
            caller=who,
            caller_type=self.caller_type if who is not None else None,
            now=int(self.clock()),
            nonce=self.nonce(),
            key=self._signing_key,
        )
        # Built whole here rather than by ``client.build_request``, and with its framing
        # headers set as httpx's ``Request`` would set them (Host first, a body's length
        # last, an empty POST's "0" after Host), so the bytes sent are the same: merging URLs,
        # default headers and cookies, and httpx's header defaults, per call were a
        # measurable share of the SDK's CPU (row (e)).
        seconds = client.timeout if timeout is None else httpx.Timeout(timeout)
        if url is None:
            url = httpx.URL(f"{str(client.base_url).rstrip('/')}{path}")
        raw = [(b"Host", url.netloc)]
        if not body and method in ("POST", "PUT", "PATCH"):
            raw.append((b"Content-Length", b"0"))
        raw += [(name.encode(), value.encode("ascii")) for name, value in headers.items()]
        if body:
            raw.append((b"Content-Length", str(len(body)).encode()))
        request = httpx.Request(
            method,
            url,
            headers=raw,
            stream=httpx.ByteStream(body),
            extensions={"timeout": seconds.as_dict()},
        )
        request.read()
        return request


def vault_json(response: VaultAnswer, *, secrets: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object of a vault success answer, or the typed error it stands for."""
    if response.status_code >= 400:
        raise error_from_response(
            response.status_code, response.content, response.headers, secrets=secrets
        )
    try:
        parsed = json.loads(response.content)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _bad_answer(response, "the vault's answer is not a JSON object")
    return parsed


def _bad_answer(response: VaultAnswer, message: str) -> BackendError:
    return BackendError(
        message,
        code="invalid_response",
        status_code=response.status_code,
        request_id=response.headers.get("x-request-id"),
    )


def report_status(status: int, body: bytes, *, resent: bool) -> int:
    """The status an outcome report counts as: the vault's, except for a resent copy.

    A report's copy goes out again only when its connection ended unanswered (see
    ``SyncLane.pipeline``), so whether the vault got the first copy is unknown. Both carry one
    nonce, and the vault stores a signed request's nonce only with the record it admits: a
    replay refusal of the resent copy proves the first one was recorded, so it counts as the
    first copy's 202 would have.
    """
    if not resent or status != 401:
        return status
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return status
    return 202 if isinstance(detail, dict) and detail.get("error") == "replayed_request" else status


def token_payload(call: Call) -> dict[str, Any]:
    """The ``/sdk/token`` body (protocol 3.2)."""
    request = {"method": call.method, "url": str(call.full_url())}
    return {"grant_id": call.grant_id, "reason": call.reason, "request": request}


@dataclass(frozen=True, slots=True, repr=False)
class TokenGrant:
    """A ``/sdk/token`` answer: the injection payload plus what the audit report needs.

    It holds the credential, so its repr names the grant only.
    """

    payload: Mapping[str, Any]
    grant_id: str
    provider_id: str
    token_generation: str | None
    secrets: tuple[str, ...] = field(default=())
    injected_headers: frozenset[str] = frozenset()
    injected_query: frozenset[str] = frozenset()
    wired: Wired | None = None  # ``from_wire(payload)``, parsed once for the names and inject

    def __repr__(self) -> str:
        return f"TokenGrant(grant_id={self.grant_id!r}, payload={REDACTED!r})"

    @classmethod
    def parse(cls, response: VaultAnswer, *, api_key: str) -> TokenGrant:
        payload = vault_json(response, secrets=(api_key,))
        token = payload.get("access_token")
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n\0"):
            raise _bad_answer(response, "the vault's token answer has no usable access_token")
        grant_id = _canonical_uuid(payload.get("grant_id"))
        if grant_id is None:
            raise _bad_answer(response, "the vault's token answer has no canonical grant_id")
        try:
            wired = from_wire(payload)
            headers, query = injected_names(payload, wired=wired)
        except InjectionRuleError as exc:
            message = f"the vault's injection fields are invalid ({exc.field})"
            raise _bad_answer(response, message) from None
        values = _secret_values(payload.get("additional_credentials"))
        provider_id = payload.get("provider_id")
        return cls(
            payload=payload,
            grant_id=grant_id,
            provider_id=provider_id if isinstance(provider_id, str) else "",
            token_generation=_canonical_uuid(payload.get("token_generation")),
            # A grant whose credential rides only in the query has the grant id as its
            # placeholder "token" (see injection.wire.GRANT_HEADER): not a secret to mask.
            secrets=(*((token,) if token != grant_id else ()), *values, api_key),
            injected_headers=frozenset(name.lower() for name in headers),
            injected_query=query,
            wired=wired,
        )

    def inject(self, request: httpx.Request) -> httpx.Request:
        return apply_wire(self.payload, request, wired=self.wired)


def _secret_values(extra: object) -> tuple[str, ...]:
    """The ``additional_credentials`` values worth masking wherever they reappear.

    AWS region and service name places, not secrets; and a value under 8 characters (an app id
    such as ``42``) would mask unrelated text, so it is only ever dropped by header name.
    """
    if not isinstance(extra, dict):
        return ()
    return tuple(
        value
        for key, value in extra.items()
        if key not in _PUBLIC_FIELDS and isinstance(value, str) and len(value) >= 8
    )


def _canonical_uuid(value: object) -> str | None:
    """``value`` when it is a UUID in its canonical form (``str(uuid.UUID(value)) == value``:
    lower-case hex in 8-4-4-4-12 groups), else None."""
    if isinstance(value, str) and _UUID.fullmatch(value):
        return value
    return None


def proxy_payload(call: Call) -> dict[str, Any]:
    """The ``/sdk/proxy`` body (protocol 4.2); raw content travels as ``body_b64``."""
    payload: dict[str, Any] = {"method": call.method, "url": str(call.url)}
    payload["grant_id"] = call.grant_id
    if call.json is not None:
        payload["body"] = call.json
    elif call.content:
        payload["body_b64"] = base64.b64encode(call.content).decode("ascii")
    if call.headers:
        payload["headers"] = dict(call.headers)
    if call.params:
        payload["query_params"] = dict(call.params)
    if call.reason is not None:
        payload["reason"] = call.reason
    return payload


def proxy_outcome(
    answer: VaultAnswer, call: Call, *, api_key: str
) -> httpx.Response | PendingApproval:
    """The provider's answer, or (202) the approval the grant's policy holds the call for."""
    if answer.status_code == 202:
        return parse_answer(PendingApproval, answer, secrets=(api_key,))
    return raise_for_provider(proxy_response(answer, call, api_key=api_key), (api_key,))


def parse_answer(cls: type[T], answer: VaultAnswer, *, secrets: tuple[str, ...]) -> T:
    """A vault success answer as ``cls`` (see _shapes), or the typed error it stands for."""
    data = vault_json(answer, secrets=secrets)
    try:
        return parse(cls, data)
    except ShapeError as exc:
        raise _bad_answer(
            answer, f"the vault's answer does not fit {cls.__name__}: {exc}"
        ) from None


def proxy_response(answer: VaultAnswer, call: Call, *, api_key: str) -> httpx.Response:
    """The provider's answer, rebuilt from the ``/sdk/proxy`` envelope (protocol 4.3)."""
    envelope = vault_json(answer, secrets=(api_key,))
    if answer.status_code != 200:
        raise _bad_answer(answer, f"unexpected HTTP {answer.status_code} from /sdk/proxy")
    status, headers, body_b64 = (envelope.get(k) for k in ("status_code", "headers", "body_b64"))
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise _bad_answer(answer, "the proxy answer has no valid status_code")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise _bad_answer(answer, "the proxy answer's headers are not strings")
    if not isinstance(body_b64, str) or not _B64.fullmatch(body_b64):
        raise _bad_answer(answer, "the proxy answer's body_b64 is not base64")
    try:
        content = base64.b64decode(body_b64, validate=True)
    except binascii.Error:
        raise _bad_answer(answer, "the proxy answer's body_b64 is not base64") from None
    kept = {k: v for k, v in headers.items() if k.lower() not in _FRAMING_HEADERS}
    request = httpx.Request(call.method, call.full_url(), headers=call.headers)
    response = httpx.Response(status, headers=kept, content=content, request=request)
    response.extensions["vaultgate"] = {
        "body_truncated": envelope.get("body_truncated") is True,
        "request_id": answer.headers.get("x-request-id"),
    }
    return response


def raise_for_provider(response: httpx.Response, secrets: tuple[str, ...]) -> httpx.Response:
    """``response``, or the ``ProviderAPIError`` for its status >= 400 (parity with alter-sdk)."""
    error = provider_error(response, secrets)
    if error is not None:
        raise error
    return response


def raise_for_stream(response: httpx.Response, api_key: str) -> None:
    """The error for a read transparent-proxy answer >= 400.

    The vault marks its own errors with ``X-Vaultgate-Error``; any other status is the
    provider's, and raises like ``request()`` does.
    """
    if "x-vaultgate-error" in response.headers:
        raise error_from_response(
            response.status_code, response.content, response.headers, secrets=(api_key,)
        )
    raise_for_provider(response, (api_key,))
