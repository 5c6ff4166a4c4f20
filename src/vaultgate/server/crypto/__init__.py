"""The barrier: owns sealing, opening and key derivation, and is the only importer of
`cryptography.hazmat`. It must never offer a way to turn encryption off or to print key material.
"""

from vaultgate.server.crypto.envelope import (
    API_KEY_HASH,
    AUDIT_CHAIN,
    PORTAL_SESSION,
    Barrier,
    Sealed,
    aad_for,
    wrapping_key_id,
)
from vaultgate.server.crypto.errors import DecryptionError, MasterKeyError
from vaultgate.server.crypto.keyring import Keyring, MasterKey, check_keyring, kcv
from vaultgate.server.crypto.providers import (
    ENV_NAME,
    EnvKeyProvider,
    FileKeyProvider,
    MasterKeyProvider,
)

__all__ = [
    "API_KEY_HASH",
    "AUDIT_CHAIN",
    "ENV_NAME",
    "PORTAL_SESSION",
    "Barrier",
    "DecryptionError",
    "EnvKeyProvider",
    "FileKeyProvider",
    "Keyring",
    "MasterKey",
    "MasterKeyError",
    "MasterKeyProvider",
    "Sealed",
    "aad_for",
    "check_keyring",
    "kcv",
    "wrapping_key_id",
]
