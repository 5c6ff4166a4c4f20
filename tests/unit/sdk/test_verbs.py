"""The admin verbs' answer checks, without a vault: a success answer that lacks a documented
field is a ``BackendError`` naming the field, never a ``KeyError`` or a half-built record."""

from __future__ import annotations

import httpx
import pytest

import vaultgate


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_bad_answer_shape_is_a_backend_error(kind: str) -> None:
    """A success answer missing a documented field is a BackendError, never a KeyError."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"grants": [], "total": 0, "limit": 100})

    key = "alter_key_" + "k" * 40
    if kind == "async":
        async with vaultgate.AlterVault(
            api_key=key, base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handler)
        ) as vault:
            with pytest.raises(vaultgate.BackendError) as raised:
                await vault.list_grants()
    else:
        with (
            vaultgate.SyncVault(
                api_key=key, base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handler)
            ) as sync,
            pytest.raises(vaultgate.BackendError) as raised,
        ):
            sync.list_grants()
    assert raised.value.code == "invalid_response" and "offset" in str(raised.value)
