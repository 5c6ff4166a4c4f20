"""The flat public namespace: exactly these names, sorted, typed, and free of the server."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import vaultgate

EXPECTED = [
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


def test_all_is_exactly_the_public_surface_and_sorted() -> None:
    assert vaultgate.__all__ == EXPECTED
    assert sorted(vaultgate.__all__) == vaultgate.__all__


def test_every_exported_name_exists_and_is_public() -> None:
    for name in vaultgate.__all__:
        assert getattr(vaultgate, name).__module__.startswith("vaultgate")


def test_aliases_point_at_the_same_objects() -> None:
    assert vaultgate.Vault is vaultgate.AlterVault
    assert vaultgate.AlterSDKError is vaultgate.VaultgateError


def test_package_ships_py_typed() -> None:
    assert (pathlib.Path(vaultgate.__file__).parent / "py.typed").is_file()


def test_importing_the_sdk_loads_nothing_from_the_server() -> None:
    code = (
        "import sys, vaultgate; "
        "print(sorted(m for m in sys.modules if m.startswith(('vaultgate.server', 'fastapi', "
        "'sqlalchemy', 'cryptography', 'aiohttp'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_first_user_story_names_import() -> None:
    from vaultgate import AlterVault, HttpMethod

    assert HttpMethod.POST == "POST"
    assert callable(AlterVault)
