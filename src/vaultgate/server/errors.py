"""The server's one error tree, and the single place it becomes an HTTP answer.

    VaultError                   (status, code, message)
    ├── InvalidInput        400  bad_request / a field-specific code
    │   └── Unprocessable   422  validation_error, blocked_destination, ...
    ├── Unauthenticated     401  invalid_key, key_revoked, key_expired, invalid_signature
    ├── Forbidden           403  policy codes, grant_expired, grant_revoked, forbidden
    ├── NotFound            404  grant_not_found, app_not_found, secret_not_found, ...
    ├── Conflict            409  duplicate_name, ...
    ├── PreconditionFailed  412  policy_changed (If-Match names a version no longer stored)
    ├── PayloadTooLarge     413  body_too_large
    ├── RateLimited         429  rate_limit_exceeded (with Retry-After)
    │   └── BudgetExceeded  429  quota_exceeded (Retry-After: the end of the budget's window)
    ├── BadGateway          502  upstream_error
    ├── Unavailable         503  audit_unavailable, storage_unavailable
    │   └── MasterKeyUnavailable 503  master_key_unavailable (this node lacks the wrapping key)
    └── GatewayTimeout      504  upstream_timeout

Messages are written for the client: they name the field or rule at fault and never carry a
secret value.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VaultError(Exception):
    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}

    def envelope(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            detail["field"] = self.field
        detail.update(self.extra)
        return {"detail": detail}


class InvalidInput(VaultError):
    status = 400
    default_code = "bad_request"


class Unprocessable(InvalidInput):
    status = 422
    default_code = "validation_error"


class Unauthenticated(VaultError):
    status = 401
    default_code = "invalid_key"


class Forbidden(VaultError):
    status = 403
    default_code = "forbidden"


class NotFound(VaultError):
    status = 404
    default_code = "not_found"


class Conflict(VaultError):
    status = 409
    default_code = "conflict"


class PreconditionFailed(VaultError):
    """412: an ``If-Match`` (or the portal form's tag) names a version that is no longer the
    stored one; nothing was written. ``ETag`` carries the current tag."""

    status = 412
    default_code = "precondition_failed"


class PayloadTooLarge(VaultError):
    status = 413
    default_code = "body_too_large"


class RateLimited(VaultError):
    status = 429
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(1, retry_after)
        self.headers.setdefault("Retry-After", str(self.retry_after))
        self.extra.setdefault("retry_after", self.retry_after)


class BudgetExceeded(RateLimited):
    """A grant's budget is spent for its window: the official client's ``QuotaExceededError``."""

    default_code = "quota_exceeded"


class BadGateway(VaultError):
    status = 502
    default_code = "upstream_error"


class Unavailable(VaultError):
    status = 503
    default_code = "unavailable"


class MasterKeyUnavailable(Unavailable):
    """This node does not hold the master key a data key is wrapped under (a re-wrap reached
    the data before the node was given the key). Another node may serve it; nothing is used."""

    default_code = "master_key_unavailable"

    def __init__(self, key_id: str) -> None:
        super().__init__(
            "this vault node cannot open the secret yet (its master key has not reached this "
            "node); retry, or use another node",
            headers={"Retry-After": "1"},
        )
        self.key_id = key_id  # for the log line; not in the answer


class GatewayTimeout(VaultError):
    status = 504
    default_code = "upstream_timeout"


class MethodNotAllowed(VaultError):
    """405 ``method_refused``: a method outside the vault's fixed allow-list (TRACE, CONNECT...).

    Not a policy denial (that is a 403): no grant could allow it. ``Allow`` lists what can.
    """

    status = 405
    default_code = "method_refused"


class NotSupported(VaultError):
    """501: a request the vault understands but does not serve (a WebSocket upgrade)."""

    status = 501
    default_code = "not_supported"
