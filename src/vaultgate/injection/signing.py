"""The Alter SDK request-signing scheme (HMAC-SHA256 over method, path, time, nonce, body hash).

Both sides live here: `sign_request` for our SDK, `verify_signature` for the server. The key is
derived from the API key itself, so the server needs no stored copy of it. Freshness (the
timestamp window) and replay (the nonce cache) need state and a clock, so they are the server's;
`parse_timestamp` hands it the signed time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode

SIGNING_CONTEXT: Final = b"alter-signing-v1"

TIMESTAMP: Final = "X-Alter-Timestamp"
NONCE: Final = "X-Alter-Nonce"
CONTENT_SHA256: Final = "X-Alter-Content-SHA256"
SIGNATURE: Final = "X-Alter-Signature"
SIGNATURE_V2: Final = "X-Alter-Signature-V2"
SCOPE_CONSTRAINTS: Final = "X-Alter-Scope-Constraints"
REQUEST_RULE: Final = "X-Alter-Request-Rule"
CALLER: Final = "X-Alter-Caller"
CALLER_TYPE: Final = "X-Alter-Caller-Type"
ACTOR_ID: Final = "X-Alter-Actor-ID"
CONTEXT: Final = "X-Alter-Context"

# The V2 string binds these identity headers, in this order, each under its label.
_IDENTITY: Final = (
    ("caller", CALLER),
    ("caller-type", CALLER_TYPE),
    ("actor-id", ACTOR_ID),
    ("actor-context", CONTEXT),
)


class SignatureError(Exception):
    """A request whose signature cannot be accepted.

    ``code`` is ``missing_signature``, ``invalid_signature`` or ``content_hash_mismatch``; the
    message says which header is at fault and never echoes a key or a signature.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def signing_key(api_key: str) -> bytes:
    """HMAC-SHA256(api_key, "alter-signing-v1"): the 32-byte key both sides sign with."""
    return hmac.new(api_key.encode("utf-8"), SIGNING_CONTEXT, hashlib.sha256).digest()


def canonical_path(path_with_query: str) -> str:
    """The signed form of a path: percent-decoded, with the query re-encoded in sorted order.

    A present but empty query (``/x?``) signs as ``/x``; a non-empty query that parses to nothing
    (``/x?&``) keeps its ``?``, exactly as the official client does.
    """
    path, _, query = path_with_query.partition("?")
    if not query:
        return unquote(path)
    pairs = sorted(parse_qsl(query, keep_blank_values=True, separator="&"))
    return f"{unquote(path)}?{urlencode(pairs)}"


def string_to_sign(
    method: str,
    path_with_query: str,
    timestamp: str,
    nonce: str,
    content_sha256: str,
    scope_constraints: str = "",
    request_rule: str = "",
) -> str:
    """The legacy string: six lines, plus ``request-rule:`` when a request rule is present."""
    lines = [
        method.upper(),
        canonical_path(path_with_query),
        timestamp,
        nonce,
        content_sha256,
        scope_constraints,
    ]
    if request_rule:
        lines.append(f"request-rule:{request_rule}")
    return "\n".join(lines)


def string_to_sign_v2(legacy: str, identity: Mapping[str, str]) -> str:
    """The legacy string plus one ``label:value`` line per non-empty identity header.

    ``identity`` maps header names (``X-Alter-Caller``...) to the exact values sent.
    """
    lines = [legacy]
    for label, header in _IDENTITY:
        value = identity.get(header, "")
        if value:
            lines.append(f"{label}:{value}")
    return "\n".join(lines)


def sign_request(
    api_key: str,
    method: str,
    path_with_query: str,
    body: bytes,
    *,
    caller: str | None = None,
    caller_type: str | None = None,
    actor_id: str | None = None,
    context: str | Mapping[str, str] | None = None,
    scope_constraints: str = "",
    now: int,
    nonce: str,
    key: bytes | None = None,
) -> dict[str, str]:
    """The headers to add to a request to the vault's SDK API.

    ``key`` is ``signing_key(api_key)`` when the caller keeps it (it signs every call with it).

    ``path_with_query`` is the SDK-relative path (``/sdk/token``), without any mount prefix of the
    base URL. The identity headers that were signed are returned too, with the exact values
    signed (``context`` given as a mapping is serialised here, compactly), so that what is sent
    always matches what was signed.
    """
    identity = _identity_headers(caller, caller_type, actor_id, context)
    content_sha256 = hashlib.sha256(body).hexdigest()
    legacy = string_to_sign(
        method, path_with_query, str(now), nonce, content_sha256, scope_constraints
    )
    v2 = string_to_sign_v2(legacy, identity)
    signature = _keyed_hmac(key if key is not None else signing_key(api_key), v2)
    headers = {
        TIMESTAMP: str(now),
        NONCE: nonce,
        CONTENT_SHA256: content_sha256,
        SIGNATURE: signature,
        **identity,
    }
    if v2 != legacy:
        headers[SIGNATURE_V2] = signature
    if scope_constraints:
        headers[SCOPE_CONSTRAINTS] = scope_constraints
    return headers


def verify_signature(
    api_key: str,
    method: str,
    path_with_query: str,
    body: bytes,
    headers: Mapping[str, str],
) -> None:
    """Raise `SignatureError` unless ``headers`` carry a valid signature of this request.

    ``path_with_query`` is the path with the mount prefix already stripped (the SDK signs the
    path relative to its base URL). When identity headers are present, both signature headers
    must carry the V2 signature, so stripping them cannot downgrade to the legacy check.
    """
    received = {name.lower(): value for name, value in headers.items()}
    present = {name: received.get(name.lower(), "") for name in (TIMESTAMP, NONCE, CONTENT_SHA256)}
    signature = received.get(SIGNATURE.lower(), "")
    missing = [name for name, value in (*present.items(), (SIGNATURE, signature)) if not value]
    if missing:
        raise SignatureError("missing_signature", f"missing header {missing[0]}")
    parse_timestamp(headers)
    expected_hash = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(present[CONTENT_SHA256].lower().encode(), expected_hash.encode()):
        raise SignatureError("content_hash_mismatch", f"{CONTENT_SHA256} does not match the body")
    legacy = string_to_sign(
        method,
        path_with_query,
        present[TIMESTAMP],
        present[NONCE],
        present[CONTENT_SHA256],
        received.get(SCOPE_CONSTRAINTS.lower(), ""),
        received.get(REQUEST_RULE.lower(), ""),
    )
    identity = {header: received.get(header.lower(), "") for _, header in _IDENTITY}
    v2 = string_to_sign_v2(legacy, identity)
    expected = _hmac(api_key, v2)
    if v2 != legacy and not _same(received.get(SIGNATURE_V2.lower(), ""), expected):
        raise SignatureError("invalid_signature", f"{SIGNATURE_V2} does not match the request")
    if not _same(signature, expected):
        raise SignatureError("invalid_signature", f"{SIGNATURE} does not match the request")


def parse_timestamp(headers: Mapping[str, str]) -> int:
    """The signed Unix time in seconds; `SignatureError` when absent or not a decimal integer."""
    received = {name.lower(): value for name, value in headers.items()}
    value = received.get(TIMESTAMP.lower(), "")
    if not value:
        raise SignatureError("missing_signature", f"missing header {TIMESTAMP}")
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise SignatureError("invalid_signature", f"{TIMESTAMP} is not a Unix time in seconds")
    return int(value)


def _identity_headers(
    caller: str | None,
    caller_type: str | None,
    actor_id: str | None,
    context: str | Mapping[str, str] | None,
) -> dict[str, str]:
    if context is not None and not isinstance(context, str):
        context = json.dumps(dict(context), separators=(",", ":"))
    values = {CALLER: caller, CALLER_TYPE: caller_type, ACTOR_ID: actor_id, CONTEXT: context}
    return {header: value for header, value in values.items() if value}


def _hmac(api_key: str, text: str) -> str:
    return _keyed_hmac(signing_key(api_key), text)


def _keyed_hmac(key: bytes, text: str) -> str:
    """HMAC-SHA256 as hex, by OpenSSL's one-shot call (the same bytes as ``hmac.new``)."""
    return hmac.digest(key, text.encode("utf-8"), "sha256").hex()


def _same(received: str, expected: str) -> bool:
    """Constant-time equality of two hex digests (ASCII-encoded, so any input is comparable)."""
    return hmac.compare_digest(received.encode("utf-8"), expected.encode("utf-8"))
