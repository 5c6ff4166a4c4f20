"""The SDK's names load on first use, so a vault worker never carries httpx in its memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

import vaultgate

SDK_ONLY = ("httpx", "httpcore", "click", "rich", "vaultgate._client", "vaultgate._sync")


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def test_the_vault_app_loads_without_the_sdk_or_httpx() -> None:
    loaded = modules_after("import vaultgate.server.app")
    assert "vaultgate.server.app" in loaded
    assert not loaded & set(SDK_ONLY)


def test_the_first_use_of_a_name_loads_the_sdk() -> None:
    loaded = modules_after("from vaultgate import AlterVault, SyncVault, NetworkError")
    assert {"httpx", "vaultgate._client", "vaultgate._sync"} <= loaded


def test_every_public_name_resolves_and_unknown_names_raise() -> None:
    for name in vaultgate.__all__:
        assert getattr(vaultgate, name) is not None
    assert set(vaultgate.__all__) <= set(dir(vaultgate))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = vaultgate.no_such_name  # type: ignore[attr-defined]
