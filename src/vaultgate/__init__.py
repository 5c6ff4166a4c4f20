"""The vaultgate SDK: call APIs with stored credentials by grant id (AlterVault, SyncVault).

It depends on httpx only, and must never import ``vaultgate.server`` nor print a key or secret.

The names load on first use (PEP 562): every ``vaultgate.server`` module imports this package
first, and a vault worker that never uses the SDK should not carry httpx (and, through httpx's
command line, click, rich and pygments) in its memory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import AlterVault, Vault
    from ._config import is_valid_key
    from ._errors import (
        AlterSDKError,
        AlterValueError,
        ApprovalDeniedError,
        ApprovalError,
        ApprovalExecutionFailedError,
        ApprovalExpiredError,
        ApprovalTimeoutError,
        BackendError,
        BlockedDestinationError,
        CredentialRevokedError,
        GrantDeletedError,
        GrantExpiredError,
        GrantNotFoundError,
        GrantRevokedError,
        InsufficientScopeError,
        InvalidKeyError,
        KeyExpiredError,
        KeyRevokedError,
        KeyRotationExpiredError,
        NetworkError,
        PolicyViolationError,
        ProviderAPIError,
        ProviderUnauthorizedError,
        RateLimitError,
        ReAuthRequiredError,
        RestrictedGrantRequiresProxyError,
        ServiceUnavailableError,
        SiblingLabelConflictError,
        TimeoutError,
        VaultgateError,
    )
    from ._models import (
        APIKeyInfo,
        ApprovalGate,
        ApprovalGateStatus,
        ApprovalResult,
        ApprovalStatus,
        CallerType,
        GrantInfo,
        HttpMethod,
        ManagedSecretGrantItem,
        MintedKey,
        PendingApproval,
        RevokeGrantResult,
        UnifiedGrantListResult,
    )
    from ._sync import SyncVault

__version__ = "0.1.0"

__all__ = [
    "APIKeyInfo",
    "AlterSDKError",
    "AlterValueError",
    "AlterVault",
    "ApprovalDeniedError",
    "ApprovalError",
    "ApprovalExecutionFailedError",
    "ApprovalExpiredError",
    "ApprovalGate",
    "ApprovalGateStatus",
    "ApprovalResult",
    "ApprovalStatus",
    "ApprovalTimeoutError",
    "BackendError",
    "BlockedDestinationError",
    "CallerType",
    "CredentialRevokedError",
    "GrantDeletedError",
    "GrantExpiredError",
    "GrantInfo",
    "GrantNotFoundError",
    "GrantRevokedError",
    "HttpMethod",
    "InsufficientScopeError",
    "InvalidKeyError",
    "KeyExpiredError",
    "KeyRevokedError",
    "KeyRotationExpiredError",
    "ManagedSecretGrantItem",
    "MintedKey",
    "NetworkError",
    "PendingApproval",
    "PolicyViolationError",
    "ProviderAPIError",
    "ProviderUnauthorizedError",
    "RateLimitError",
    "ReAuthRequiredError",
    "RestrictedGrantRequiresProxyError",
    "RevokeGrantResult",
    "ServiceUnavailableError",
    "SiblingLabelConflictError",
    "SyncVault",
    "TimeoutError",
    "UnifiedGrantListResult",
    "Vault",
    "VaultgateError",
    "is_valid_key",
]

_HOMES = {
    "AlterVault": "_client",
    "Vault": "_client",
    "SyncVault": "_sync",
    "is_valid_key": "_config",
    **dict.fromkeys(
        [
            "APIKeyInfo",
            "ApprovalGate",
            "ApprovalGateStatus",
            "ApprovalResult",
            "ApprovalStatus",
            "CallerType",
            "GrantInfo",
            "HttpMethod",
            "ManagedSecretGrantItem",
            "MintedKey",
            "PendingApproval",
            "RevokeGrantResult",
            "UnifiedGrantListResult",
        ],
        "_models",
    ),
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_HOMES.get(name, '_errors')}", __name__)
    value = getattr(module, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
