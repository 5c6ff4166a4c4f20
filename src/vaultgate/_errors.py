"""The SDK's one exception tree, and the single function that maps a vault answer onto it.

    VaultgateError (alias AlterSDKError)      .code .message .status_code .request_id
    ├── AlterValueError (also ValueError)      the SDK refused caller input before sending
    ├── BackendError                           the vault answered with an error
    │   ├── BlockedDestinationError      422   blocked_destination
    │   ├── ReAuthRequiredError          401   jwt_validation_error
    │   │   ├── GrantExpiredError        403   grant_expired
    │   │   ├── GrantRevokedError        400/403 grant_revoked
    │   │   ├── CredentialRevokedError   400/403 credential_revoked
    │   │   └── GrantDeletedError        410   any
    │   ├── GrantNotFoundError           404   any
    │   ├── PolicyViolationError         403   any other code (.policy_error)
    │   ├── InsufficientScopeError       403   insufficient_scope (.required .granted .missing)
    │   ├── SiblingLabelConflictError    409   sibling_label_conflict (.label)
    │   ├── RestrictedGrantRequiresProxyError 400/403 *_requires_proxy
    │   ├── RateLimitError               429   rate_limit_exceeded, quota_exceeded (.retry_after)
    │   ├── InvalidKeyError              401   invalid_key
    │   ├── KeyRevokedError              401   key_revoked
    │   ├── KeyExpiredError              401   key_expired
    │   ├── KeyRotationExpiredError      401   key_rotated_grace_expired
    │   └── ServiceUnavailableError      503   any
    ├── ApprovalError                          a held call's outcome (.approval_id)
    │   ├── ApprovalDeniedError          any   approval_denied
    │   ├── ApprovalExpiredError         any   approval_expired
    │   ├── ApprovalExecutionFailedError any   approval_execution_failed
    │   └── ApprovalTimeoutError               await_approval's own wait ran out
    ├── ProviderAPIError                       the provider answered >= 400 (.response_body)
    │   └── ProviderUnauthorizedError          the provider answered 401
    └── NetworkError                           the vault or the provider could not be reached
        └── TimeoutError

The names mirror the official ``alter_sdk`` client, so code written against it catches the same
classes. ``str()`` of any error is its message alone, and no message ever carries the API key or
a credential: texts that came over the wire pass through ``redact`` first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx

REDACTED: Final = "**********"

_PROXY_REQUIRED: Final = frozenset(
    {
        "restricted_grant_requires_proxy",
        "delegated_grant_requires_proxy",
        "hitl_grant_requires_proxy",
        "user_limits_require_proxy",
    }
)


class VaultgateError(Exception):
    """Base of every error the SDK raises."""

    default_code: str = "vaultgate_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status_code = status_code
        self.request_id = request_id
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status_code={self.status_code!r}, "
            f"message={self.message!r})"
        )


AlterSDKError = VaultgateError


class AlterValueError(VaultgateError, ValueError):
    """Caller input the SDK refused before sending anything (bad key, URL, header...)."""

    default_code = "invalid_input"


class BackendError(VaultgateError):
    """The vault answered with an error status."""

    default_code = "backend_error"


class BlockedDestinationError(BackendError):
    """The destination is not one of the grant's allowed hosts, or failed the egress guard."""


class ReAuthRequiredError(BackendError):
    """The grant can no longer be used as it is; it must be renewed or replaced."""


class GrantExpiredError(ReAuthRequiredError):
    pass


class GrantRevokedError(ReAuthRequiredError):
    pass


class CredentialRevokedError(ReAuthRequiredError):
    pass


class GrantDeletedError(ReAuthRequiredError):
    pass


class GrantNotFoundError(BackendError):
    """No such grant for this key's app (a grant of another app answers the same)."""


class PolicyViolationError(BackendError):
    """The grant's policy refused the call; ``policy_error`` is the rule's code."""

    @property
    def policy_error(self) -> str:
        return self.code


class RestrictedGrantRequiresProxyError(BackendError):
    """The grant never releases its credential: use ``proxy_request`` or ``stream``."""


class RateLimitError(BackendError):
    """Too many calls; ``retry_after`` is the number of seconds to wait, when known."""

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class InvalidKeyError(BackendError):
    pass


class KeyRevokedError(BackendError):
    pass


class KeyExpiredError(BackendError):
    pass


class KeyRotationExpiredError(BackendError):
    """The key was rotated and its overlap window has ended: use its successor."""


class InsufficientScopeError(BackendError):
    """The key lacks a scope the route needs; ``missing`` names it (``keys.derive`` narrows)."""

    @property
    def required(self) -> list[str]:
        return _strings(self.details.get("required"))

    @property
    def granted(self) -> list[str]:
        return _strings(self.details.get("granted"))

    @property
    def missing(self) -> list[str]:
        return _strings(self.details.get("missing"))

    @property
    def scope_version(self) -> int | None:
        return _integer(self.details.get("scope_version"))

    @property
    def current_scope_version(self) -> int | None:
        return _integer(self.details.get("current_scope_version"))


class SiblingLabelConflictError(BackendError):
    """``mint_grant``: an active grant on the same secret already has this ``label``."""

    @property
    def label(self) -> str | None:
        value = self.details.get("label")
        return value if isinstance(value, str) else None


class ServiceUnavailableError(BackendError):
    """The vault cannot serve now (for example its audit trail cannot be written)."""


class ApprovalError(VaultgateError):
    """A call held for a human approval did not end in an answer; ``approval_id`` names it."""

    default_code = "approval_error"

    @property
    def approval_id(self) -> str | None:
        value = self.details.get("approval_id")
        return value if isinstance(value, str) else None


class ApprovalDeniedError(ApprovalError):
    default_code = "approval_denied"


class ApprovalExpiredError(ApprovalError):
    default_code = "approval_expired"


class ApprovalExecutionFailedError(ApprovalError):
    """Approved, but the vault could not complete the call (the provider was unreachable...)."""

    default_code = "approval_execution_failed"


class ApprovalTimeoutError(ApprovalError):
    """``await_approval`` stopped waiting; the approval may still be decided later."""

    default_code = "approval_timeout"


class ProviderAPIError(VaultgateError):
    """The provider answered >= 400. ``status_code`` is the provider's status."""

    default_code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        response_body: str | None = None,
        response: httpx.Response | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.response_body = response_body
        self.response = response


class ProviderUnauthorizedError(ProviderAPIError):
    """The provider refused the injected credential (401): rotate the stored secret."""

    default_code = "provider_unauthorized"


class NetworkError(VaultgateError):
    default_code = "network_error"


# Shadows the builtin on purpose: the official client's name, kept for parity.
class TimeoutError(NetworkError):
    default_code = "timeout"


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced (empty secrets are ignored)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _parse_envelope(body: bytes) -> tuple[dict[str, Any], bool]:
    """The inner object of ``{"detail": {...}}`` (or the top level), and whether it was JSON."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}, False
    if not isinstance(parsed, dict):
        return {}, True
    detail = parsed.get("detail")
    if isinstance(detail, dict):
        return detail, True
    if isinstance(detail, str):
        return {"message": detail}, True
    return parsed, True


def _retry_after(headers: Mapping[str, str], inner: Mapping[str, Any]) -> int | None:
    """Seconds from ``Retry-After`` (delta or HTTP date), which wins over the body's value."""
    raw = headers.get("retry-after")
    if raw is not None:
        value = raw.strip()
        if value.isdigit():
            return int(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0, int((when - datetime.now(UTC)).total_seconds()))
    body_value = inner.get("retry_after")
    if isinstance(body_value, int) and not isinstance(body_value, bool) and body_value >= 0:
        return body_value
    return None


_BY_CODE_400: Final[Mapping[str, type[BackendError]]] = {
    "grant_revoked": GrantRevokedError,
    "credential_revoked": CredentialRevokedError,
    **dict.fromkeys(_PROXY_REQUIRED, RestrictedGrantRequiresProxyError),
}
_BY_CODE_401: Final[Mapping[str, type[BackendError]]] = {
    "jwt_validation_error": ReAuthRequiredError,
    "invalid_key": InvalidKeyError,
    "key_revoked": KeyRevokedError,
    "key_expired": KeyExpiredError,
    "key_rotated_grace_expired": KeyRotationExpiredError,
}
# Whatever the status: the outcome of a held call (on /sdk/proxy and /sdk/approvals/{id}/result).
_BY_CODE_ANY: Final[Mapping[str, type[VaultgateError]]] = {
    "approval_denied": ApprovalDeniedError,
    "approval_expired": ApprovalExpiredError,
    "approval_execution_failed": ApprovalExecutionFailedError,
}
_BY_CODE_403: Final[Mapping[str, type[BackendError]]] = {
    "insufficient_scope": InsufficientScopeError,
    "grant_expired": GrantExpiredError,
    "grant_revoked": GrantRevokedError,
    "credential_revoked": CredentialRevokedError,
    "restricted_grant_requires_proxy": RestrictedGrantRequiresProxyError,
}


def _error_class(status: int, code: str | None, is_json: bool) -> type[VaultgateError]:
    """Protocol section 5.2: the status picks a row, the ``error`` code picks the class."""
    key = code or ""
    if key in _BY_CODE_ANY:
        return _BY_CODE_ANY[key]
    if status in (400, 502):
        return _BY_CODE_400.get(key, BackendError)
    if status == 401:
        return _BY_CODE_401.get(key, BackendError)
    if status == 403:
        return _BY_CODE_403.get(key, PolicyViolationError)
    if status == 404:
        # The official client answers a missing approval with a plain BackendError.
        return BackendError if key == "approval_not_found" else GrantNotFoundError
    if status == 409 and key == "sibling_label_conflict":
        return SiblingLabelConflictError
    if status == 410:
        return GrantDeletedError
    if status == 429:
        known = key in ("rate_limit_exceeded", "quota_exceeded")
        return RateLimitError if known or not is_json else BackendError
    if status == 503:
        return ServiceUnavailableError
    if key == "blocked_destination":
        return BlockedDestinationError
    return BackendError


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], *, secrets: Iterable[str] = ()
) -> VaultgateError:
    """The typed error for a vault answer with ``status`` >= 400 (or an unusable success).

    ``headers`` must be case-insensitive (an ``httpx.Headers``). ``secrets`` are scrubbed from
    the message, so a server echoing the key back cannot make it printable.
    """
    secrets = tuple(secrets)
    inner, is_json = _parse_envelope(body)
    raw_code = inner.get("error")
    code = raw_code if isinstance(raw_code, str) and raw_code else None
    raw_message = inner.get("message")
    message = raw_message if isinstance(raw_message, str) and raw_message else None
    message = redact(message or f"the vault answered HTTP {status}", secrets)
    cls = _error_class(status, code, is_json)
    common: dict[str, Any] = {
        "code": code,
        "status_code": status,
        "request_id": headers.get("x-request-id"),
        "details": _details(inner, secrets),
    }
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=_retry_after(headers, inner), **common)
    return cls(message, **common)


def _details(inner: Mapping[str, Any], secrets: Iterable[str]) -> dict[str, Any]:
    """The envelope's other fields (``field``, ``missing``, ``label``...), texts redacted."""
    kept = {k: v for k, v in inner.items() if k != "message"}
    return {k: redact(v, secrets) if isinstance(v, str) else v for k, v in kept.items()}


def error_from_httpx(exc: httpx.TransportError, where: str) -> NetworkError:
    """A transport failure as a ``NetworkError``; the text names only the exception type."""
    cls = TimeoutError if isinstance(exc, httpx.TimeoutException) else NetworkError
    return cls(f"could not reach the {where}: {type(exc).__name__}")
