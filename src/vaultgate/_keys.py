"""``vault.keys``: scoped keys (``derive``, ``rotate``, ``revoke``), the official client's
``keys`` namespace on each twin. The ops are in ``_verbs``; these only send them."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar
from uuid import UUID

from . import _verbs
from ._models import APIKeyInfo, MintedKey
from ._verbs import Op

T = TypeVar("T")


class _Runs(Protocol):
    async def _run(self, op: Op[T]) -> T: ...


class _SyncRuns(Protocol):
    def _run(self, op: Op[T]) -> T: ...


class Keys:
    """``await vault.keys.derive(...)``; the new key's secret is in ``MintedKey.api_key`` only."""

    __slots__ = ("_vault",)

    def __init__(self, vault: _Runs) -> None:
        self._vault = vault

    async def derive(
        self,
        *,
        scopes: list[str],
        expires_in: int,
        cidr_allowlist: list[str] | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MintedKey:
        """A child key that can only narrow this one (scopes, expiry, CIDRs); it cannot derive."""
        op = _verbs.derive_key(
            scopes=scopes,
            expires_in=expires_in,
            cidr_allowlist=cidr_allowlist,
            name=name,
            metadata=metadata,
        )
        return await self._vault._run(op)

    async def rotate(self, *, key_id: str | UUID, overlap_days: int = 7) -> MintedKey:
        """A same-scope successor; the old key keeps working for ``overlap_days`` (0-30)."""
        return await self._vault._run(_verbs.rotate_key(key_id=key_id, overlap_days=overlap_days))

    async def revoke(self, *, key_id: str | UUID, force: bool = False) -> APIKeyInfo:
        """Revoke a key and every key derived from it."""
        return await self._vault._run(_verbs.revoke_key(key_id=key_id, force=force))


class SyncKeys:
    """``vault.keys.derive(...)`` on ``SyncVault``: ``Keys`` without the awaits."""

    __slots__ = ("_vault",)

    def __init__(self, vault: _SyncRuns) -> None:
        self._vault = vault

    def derive(
        self,
        *,
        scopes: list[str],
        expires_in: int,
        cidr_allowlist: list[str] | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MintedKey:
        """A child key that can only narrow this one (scopes, expiry, CIDRs); it cannot derive."""
        op = _verbs.derive_key(
            scopes=scopes,
            expires_in=expires_in,
            cidr_allowlist=cidr_allowlist,
            name=name,
            metadata=metadata,
        )
        return self._vault._run(op)

    def rotate(self, *, key_id: str | UUID, overlap_days: int = 7) -> MintedKey:
        """A same-scope successor; the old key keeps working for ``overlap_days`` (0-30)."""
        return self._vault._run(_verbs.rotate_key(key_id=key_id, overlap_days=overlap_days))

    def revoke(self, *, key_id: str | UUID, force: bool = False) -> APIKeyInfo:
        """Revoke a key and every key derived from it."""
        return self._vault._run(_verbs.revoke_key(key_id=key_id, force=force))
