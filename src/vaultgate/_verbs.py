"""The administration verbs, sans I/O: each is an ``Op`` (a signed route and the record its
answer parses into) that both twins send the same way, plus the approval wait's decisions.

Names, arguments and the checks made before sending follow the official client
(``alter_sdk``: ``App.list_grants``/``mint_grant``/``revoke_grant``, ``keys.*``, the approval
polls), so code written against it behaves the same here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote
from uuid import UUID

from ._errors import (
    AlterValueError,
    ApprovalDeniedError,
    ApprovalExecutionFailedError,
    ApprovalExpiredError,
    ApprovalTimeoutError,
    BackendError,
    NetworkError,
    VaultgateError,
)
from ._models import (
    APIKeyInfo,
    ApprovalResult,
    ApprovalStatus,
    GrantInfo,
    MintedKey,
    RevokeGrantResult,
    UnifiedGrantListResult,
)
from ._protocol import VaultAnswer, parse_answer

T = TypeVar("T")

MAX_LIST_LIMIT: Final = 1000
MAX_OVERLAP_DAYS: Final = 30
SERVER_WAIT: Final = 25  # the vault holds a status poll at most this long (and refuses more)
POLL_BUFFER: Final = 15.0  # seconds past the held poll before the HTTP read gives up
TRANSIENT_STATUSES: Final = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Op(Generic[T]):
    """One signed call to the vault and the record its success answer becomes."""

    method: str
    path: str
    payload: dict[str, Any] | None
    answer: type[T]
    timeout: float | None = None

    def parse(self, response: VaultAnswer, api_key: str) -> T:
        return parse_answer(self.answer, response, secrets=(api_key,))


def _text(value: object, name: str) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise AlterValueError(f"{name} must be a non-empty string when provided")


def _whole(value: object, name: str, low: int, high: int | None = None) -> int:
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole and value >= low and (high is None or value <= high):  # type: ignore[operator]
        return value  # type: ignore[return-value]
    span = f"from {low} to {high}" if high is not None else f">= {low}"
    raise AlterValueError(f"{name} must be a whole number {span}")


def _uuid_segment(value: object, name: str) -> str:
    """A canonical UUID, quoted for a path: the official client refuses anything else."""
    try:
        canonical = str(UUID(value)) if isinstance(value, str) else ""
    except ValueError:
        canonical = ""
    if not canonical or str(value).lower() != canonical:
        raise AlterValueError(f"{name} must be a valid UUID string", code=f"invalid_{name}")
    return quote(canonical, safe="")


def _key_segment(key_id: str | UUID, verb: str) -> str:
    text = str(key_id)
    if not text.strip():
        raise AlterValueError(f"{verb}() requires a non-empty key_id", code="invalid_key_id")
    return quote(text, safe="")


# --- grants -----------------------------------------------------------------------------------


def list_grants(
    *,
    provider_id: str | None,
    status: str | None,
    account: str | None,
    label: str | None,
    end_user_token: str | None,
    limit: int,
    offset: int,
) -> Op[UnifiedGrantListResult]:
    body: dict[str, Any] = {
        "limit": _whole(limit, "limit", 1, MAX_LIST_LIMIT),
        "offset": _whole(offset, "offset", 0),
    }
    filters = {"provider_id": provider_id, "status": status, "account": account, "label": label}
    for name, value in {**filters, "end_user_token": end_user_token}.items():
        _text(value, name)
    body |= {name: value for name, value in filters.items() if value is not None}
    if end_user_token is not None:
        # vaultgate has no end users: the vault refuses it (user_scoping_not_supported).
        body["user_token"] = end_user_token
    return Op("POST", "/sdk/grants/list", body, UnifiedGrantListResult)


def mint_grant(
    source_grant_id: str,
    *,
    label: str,
    grant_policy: dict[str, Any] | None,
    grant_tags: list[str] | None,
) -> Op[GrantInfo]:
    if not isinstance(source_grant_id, str) or not source_grant_id:
        raise AlterValueError("source_grant_id must be a non-empty string")
    if not isinstance(label, str) or not label:
        raise AlterValueError("label must be a non-empty string")
    if grant_policy is not None and not isinstance(grant_policy, dict):
        raise AlterValueError("grant_policy must be a dict when provided")
    if grant_policy is not None and "default_ttl_seconds" in grant_policy:
        raise AlterValueError("grant_policy.default_ttl_seconds is not supported on mint")
    if grant_tags is not None and (
        not isinstance(grant_tags, list) or not all(isinstance(t, str) and t for t in grant_tags)
    ):
        raise AlterValueError("grant_tags must be a list of non-empty strings when provided")
    body: dict[str, Any] = {"label": label}
    if grant_policy is not None:
        body["grant_policy"] = grant_policy
    if grant_tags is not None:
        body["grant_tags"] = grant_tags
    path = f"/sdk/grants/{quote(source_grant_id, safe='')}/mint"
    return Op("POST", path, body, GrantInfo)


def revoke_grant(grant_id: str, *, reason: str | None) -> Op[RevokeGrantResult]:
    path = f"/sdk/oauth/grants/{_uuid_segment(grant_id, 'grant_id')}/revoke"
    body = {} if reason is None else {"reason": reason}
    return Op("POST", path, body, RevokeGrantResult)


# --- scoped keys ------------------------------------------------------------------------------


def derive_key(
    *,
    scopes: list[str],
    expires_in: int,
    cidr_allowlist: list[str] | None,
    name: str | None,
    metadata: dict[str, Any] | None,
) -> Op[MintedKey]:
    if not isinstance(scopes, list) or not scopes:
        raise AlterValueError("derive() requires a non-empty scopes list")
    if not all(isinstance(s, str) and s for s in scopes):
        raise AlterValueError("derive() scopes entries must be non-empty strings")
    if "keys:derive" in scopes:
        raise AlterValueError("derive() scopes cannot include 'keys:derive'")
    body: dict[str, Any] = {
        "scopes": list(scopes),
        "expires_in": _whole(expires_in, "expires_in", 1),
    }
    extras = {"cidr_allowlist": cidr_allowlist, "name": name, "metadata": metadata}
    body |= {k: v for k, v in extras.items() if v is not None}
    return Op("POST", "/sdk/keys/derive", body, MintedKey)


def rotate_key(*, key_id: str | UUID, overlap_days: int) -> Op[MintedKey]:
    days = _whole(overlap_days, "overlap_days", 0, MAX_OVERLAP_DAYS)
    path = f"/sdk/keys/{_key_segment(key_id, 'rotate')}/rotate"
    return Op("POST", path, {"overlap_days": days}, MintedKey)


def revoke_key(*, key_id: str | UUID, force: bool) -> Op[APIKeyInfo]:
    path = f"/sdk/keys/{_key_segment(key_id, 'revoke')}"
    return Op("DELETE", f"{path}?force=true" if force else path, None, APIKeyInfo)


# --- approvals --------------------------------------------------------------------------------


def approval_status(approval_id: str, *, wait: float | None) -> Op[ApprovalStatus]:
    """``wait`` seconds held open by the vault (floored; above 25 the vault answers 422)."""
    wait = 0 if wait is None else wait
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait):
        raise AlterValueError("wait must be a finite number")
    seconds = max(0, math.floor(wait))
    path = f"/sdk/approvals/{quote(str(approval_id), safe='')}"
    if seconds == 0:
        return Op("GET", path, None, ApprovalStatus)
    timeout = min(seconds, SERVER_WAIT) + POLL_BUFFER
    return Op("GET", f"{path}?wait={seconds}", None, ApprovalStatus, timeout)


def approval_result(approval_id: str) -> Op[ApprovalResult]:
    return Op(
        "GET", f"/sdk/approvals/{quote(str(approval_id), safe='')}/result", None, ApprovalResult
    )


def check_wait(timeout: float, poll_interval: float) -> None:
    """``await_approval``'s arguments, refused as the official client refuses them."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise AlterValueError("timeout must be a finite number")
    if not math.isfinite(timeout):
        raise AlterValueError("timeout must be a finite number")
    bad = isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float)
    if bad or not math.isfinite(poll_interval) or poll_interval <= 0:
        raise AlterValueError("poll_interval must be a finite number greater than 0")


def server_wait(left: float) -> int:
    """How long to ask the vault to hold the next poll: never past the caller's deadline."""
    return max(0, min(SERVER_WAIT, int(left)))


def is_transient(error: VaultgateError) -> bool:
    """A poll failure worth retrying until the deadline: the network, or a gateway's 5xx."""
    if isinstance(error, NetworkError):
        return True
    return isinstance(error, BackendError) and error.status_code in TRANSIENT_STATUSES


def raise_if_unsuccessful(approval_id: str, status: ApprovalStatus) -> None:
    """The typed error of a terminal approval that will never have a result."""
    details = {"approval_id": approval_id}
    if status.status == "denied":
        message = status.decision_reason or "approver denied the request"
        raise ApprovalDeniedError(message, details=details)
    if status.status == "expired":
        raise ApprovalExpiredError("approval window elapsed without a decision", details=details)
    if status.status == "failed":
        failure = status.execution_error or status.decision_reason
        raise ApprovalExecutionFailedError(
            failure or "backend proxy execution failed", details=details
        )


def timed_out(
    approval_id: str, timeout: float, cause: VaultgateError | None
) -> ApprovalTimeoutError:
    reason = f"; last poll failed: {cause.message}" if cause is not None else "; still pending"
    return ApprovalTimeoutError(
        f"local wait of {timeout}s elapsed{reason}", details={"approval_id": approval_id}
    )
