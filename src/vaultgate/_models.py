"""The value types of the SDK's public surface: enums, and the answers of its admin verbs."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal
from uuid import UUID


class HttpMethod(StrEnum):
    """HTTP methods for ``request``/``proxy_request``/``stream``; plain strings work too."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


class CallerType(StrEnum):
    """What kind of workload the ``caller`` names, as the vault's audit trail records it."""

    AGENT = "agent"
    SERVICE = "service"


# --- answers of the administration verbs ------------------------------------------------------
# Field for field the official client's pydantic models of the same name (alter_sdk.models), as
# frozen dataclasses: the SDK depends on httpx only. Lists arrive as tuples; fields the vault
# adds later are ignored, and a missing required field is a BackendError (see _shapes).

ApprovalStatusValue = Literal[
    "pending", "approved", "executing", "denied", "expired", "executed", "failed"
]
TERMINAL_APPROVAL_STATUSES: Final = frozenset({"denied", "expired", "executed", "failed"})


@dataclass(frozen=True, slots=True)
class GrantInfo:
    """``mint_grant``'s answer: the new sibling grant."""

    grant_id: str
    provider_id: str
    status: str
    created_at: str
    principal_type: str
    scopes: tuple[str, ...] = ()
    account_identifier: str | None = None
    account_display_name: str | None = None
    api_base_url: str | None = None
    scope_mismatch: bool = False
    expires_at: str | None = None
    last_used_at: str | None = None
    label: str | None = None
    credential_id: str | None = None
    grant_policy: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ManagedSecretGrantItem:
    """One grant in ``list_grants``: vaultgate grants are all managed-secret grants."""

    grant_id: str
    managed_secret_id: str
    managed_secret_slug: str
    managed_secret_name: str
    status: str
    created_at: str
    principal_type: str
    grant_kind: str = "managed_secret"
    agent_id: str | None = None
    label: str | None = None
    account_identifier: str | None = None
    grant_policy: dict[str, Any] | None = None
    expires_at: str | None = None
    grant_expires_at: str | None = None
    last_used_at: str | None = None
    access_via: str = "ownership"
    delegated_at: str | None = None
    parent_grant_id: str | None = None
    depth: int = 0
    delegable: bool = False
    scope_constraint: tuple[str, ...] | None = None
    credential_id: str | None = None
    credential_kind: str | None = None
    credential_label: str | None = None


@dataclass(frozen=True, slots=True)
class UnifiedGrantListResult:
    """A page of ``list_grants``."""

    grants: tuple[ManagedSecretGrantItem, ...]
    total: int
    limit: int
    offset: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class RevokeGrantResult:
    success: bool
    message: str
    grant_id: str
    revoked_at: str


@dataclass(frozen=True, slots=True)
class APIKeyInfo:
    """A key as ``keys.revoke`` answers it: never its secret."""

    id: UUID
    name: str
    key_prefix: str
    key_type: str
    scopes: tuple[str, ...]
    scope_version: int
    created_at: datetime
    cidr_allowlist: tuple[str, ...] | None = None
    rate_limit_rpm: int | None = None
    effective_rate_limit_rpm: int | None = None
    rate_limit_source: str | None = None
    expires_at: datetime | None = None
    deprecated_at: datetime | None = None
    revoked_at: datetime | None = None
    parent_key_id: UUID | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MintedKey(APIKeyInfo):
    """``keys.derive``/``keys.rotate``: the new key, with its secret shown this once (no repr)."""

    api_key: str = field(default="", repr=False, metadata={"required": True})


@dataclass(frozen=True, slots=True)
class ApprovalGate:
    approval_id: UUID
    expires_at: datetime
    expires_in: int
    approval_url: str


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """``proxy_request`` on a grant that holds the call: poll it with ``await_approval``."""

    approval_id: UUID
    approval_group_id: UUID
    status: str
    expires_at: datetime
    expires_in: int
    approval_url: str
    gates: tuple[ApprovalGate, ...]


@dataclass(frozen=True, slots=True)
class ApprovalGateStatus:
    approval_id: UUID
    status: str
    expires_at: datetime
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApprovalStatus:
    """``get_approval_status``: where an approval stands now."""

    approval_id: UUID
    status: str
    approval_group_id: UUID
    gates: tuple[ApprovalGateStatus, ...]
    expires_at: datetime
    has_result: bool
    decided_at: datetime | None = None
    decision_reason: str | None = None
    executed_at: datetime | None = None
    execution_error: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_APPROVAL_STATUSES


@dataclass(frozen=True, slots=True)
class ApprovalResult:
    """``await_approval``: the provider's answer to the approved call, as the vault kept it."""

    status_code: int
    body_b64: str
    approval_id: UUID | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body_truncated: bool = False
    duration_ms: int | None = None
    credential_hint: str | None = None

    def body_bytes(self) -> bytes:
        return base64.b64decode(self.body_b64)

    def body_text(self, encoding: str = "utf-8") -> str:
        return self.body_bytes().decode(encoding, errors="replace")

    def body_json(self) -> Any:
        return json.loads(self.body_bytes())
