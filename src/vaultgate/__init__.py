"""The vaultgate SDK: call APIs with stored credentials by grant id (AlterVault, SyncVault).

It depends on httpx only, and must never import ``vaultgate.server`` nor print a key or secret.
"""

from ._client import AlterVault, Vault
from ._config import is_valid_key
from ._errors import (
    AlterSDKError,
    AlterValueError,
    BackendError,
    BlockedDestinationError,
    CredentialRevokedError,
    GrantDeletedError,
    GrantExpiredError,
    GrantNotFoundError,
    GrantRevokedError,
    InvalidKeyError,
    KeyExpiredError,
    KeyRevokedError,
    NetworkError,
    PolicyViolationError,
    ProviderAPIError,
    ProviderUnauthorizedError,
    RateLimitError,
    ReAuthRequiredError,
    RestrictedGrantRequiresProxyError,
    ServiceUnavailableError,
    TimeoutError,
    VaultgateError,
)
from ._models import CallerType, HttpMethod
from ._sync import SyncVault

__version__ = "0.1.0"

__all__ = [
    "AlterSDKError",
    "AlterValueError",
    "AlterVault",
    "BackendError",
    "BlockedDestinationError",
    "CallerType",
    "CredentialRevokedError",
    "GrantDeletedError",
    "GrantExpiredError",
    "GrantNotFoundError",
    "GrantRevokedError",
    "HttpMethod",
    "InvalidKeyError",
    "KeyExpiredError",
    "KeyRevokedError",
    "NetworkError",
    "PolicyViolationError",
    "ProviderAPIError",
    "ProviderUnauthorizedError",
    "RateLimitError",
    "ReAuthRequiredError",
    "RestrictedGrantRequiresProxyError",
    "ServiceUnavailableError",
    "SyncVault",
    "TimeoutError",
    "Vault",
    "VaultgateError",
    "is_valid_key",
]
