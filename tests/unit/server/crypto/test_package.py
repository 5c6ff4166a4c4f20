"""The crypto package's public surface, and the rule that it alone touches the hazmat layer."""

from __future__ import annotations

import re
from pathlib import Path

import vaultgate
import vaultgate.server.crypto as crypto


def test_all_is_sorted_and_complete() -> None:
    assert crypto.__all__ == sorted(crypto.__all__, key=lambda name: (not name.isupper(), name))
    assert set(crypto.__all__) == {
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
    }
    for name in crypto.__all__:
        assert getattr(crypto, name) is not None


def test_only_the_crypto_package_imports_hazmat() -> None:
    source_root = Path(vaultgate.__file__).parent
    crypto_dir = Path(crypto.__file__).parent
    pattern = re.compile(r"^\s*(from|import)\s+cryptography\.hazmat", re.MULTILINE)
    offenders = [
        str(path.relative_to(source_root))
        for path in source_root.rglob("*.py")
        if crypto_dir not in path.parents and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    assert pattern.search((crypto_dir / "aead.py").read_text(encoding="utf-8"))
