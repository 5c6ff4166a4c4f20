"""One call through each way a client reaches a grant, answered the same way for every test.

A ``Channel`` makes one request for a grant and returns a ``Result``: the HTTP status the client
saw, the envelope's ``error`` code, and the typed exception the client raised (if any). The six
channels are our SDK (async retrieve and proxy, sync retrieve), the official ``alter_sdk`` client
(retrieve and proxy) and the transparent proxy, so a policy test states its expectation once and
checks it everywhere.

The official client reads ``ALTER_BASE_URL`` when ``App`` is built: a test using it must set that
variable first (``monkeypatch.setenv``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import alter_sdk
import httpx

import vaultgate
from support.servers import Vault


@dataclass(frozen=True)
class Result:
    status: int | None
    code: str | None
    error: BaseException | None = None
    retry_after: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.code is None


@dataclass(frozen=True)
class Call:
    vault: Vault
    key: str
    grant_id: str
    url: str
    method: str = "GET"
    caller: str | None = None
    reason: str | None = None


Runner = Callable[[Call], Awaitable[Result]]


@dataclass(frozen=True)
class Channel:
    name: str
    mode: str  # the audit trail's mode for this channel
    official: bool
    run: Runner

    def __repr__(self) -> str:
        return self.name


def _ours(exc: vaultgate.VaultgateError) -> Result:
    retry = exc.retry_after if isinstance(exc, vaultgate.RateLimitError) else None
    return Result(exc.status_code, exc.code, exc, retry)


def _official_code(exc: alter_sdk.BackendError) -> str | None:
    if isinstance(exc, alter_sdk.PolicyViolationError):
        return exc.policy_error
    return None


def _theirs(exc: alter_sdk.AlterSDKError) -> Result:
    status = getattr(exc, "status_code", None)
    code = _official_code(exc) if isinstance(exc, alter_sdk.BackendError) else None
    retry = exc.retry_after if isinstance(exc, alter_sdk.RateLimitError) else None
    return Result(status, code, exc, retry)


async def _sdk(call: Call, proxy: bool) -> Result:
    async with vaultgate.AlterVault(api_key=call.key, base_url=call.vault.base_url) as vault:
        send = vault.proxy_request if proxy else vault.request
        try:
            response = await send(
                call.method,
                call.url,
                grant_id=call.grant_id,
                reason=call.reason,
                caller=call.caller,
            )
        except vaultgate.BackendError as exc:
            return _ours(exc)
    return Result(response.status_code, None)


async def sdk_retrieve(call: Call) -> Result:
    return await _sdk(call, proxy=False)


async def sdk_proxy(call: Call) -> Result:
    return await _sdk(call, proxy=True)


def _sync(call: Call) -> Result:
    with vaultgate.SyncVault(api_key=call.key, base_url=call.vault.base_url) as vault:
        try:
            response = vault.request(
                call.method,
                call.url,
                grant_id=call.grant_id,
                reason=call.reason,
                caller=call.caller,
            )
        except vaultgate.BackendError as exc:
            return _ours(exc)
    return Result(response.status_code, None)


async def sync_retrieve(call: Call) -> Result:
    # In a thread: the sync client blocks, and the test's loop must stay free.
    return await asyncio.to_thread(_sync, call)


async def _official(call: Call, proxy: bool) -> Result:
    async with alter_sdk.App(api_key=call.key, caller=call.caller) as app:
        send = app.proxy_request if proxy else app.request
        method = alter_sdk.HttpMethod(call.method)
        try:
            response: Any = await send(method, call.url, grant_id=call.grant_id, reason=call.reason)
        except alter_sdk.BackendError as exc:
            return _theirs(exc)
    return Result(int(response.status_code), None)


async def official_retrieve(call: Call) -> Result:
    return await _official(call, proxy=False)


async def official_proxy(call: Call) -> Result:
    return await _official(call, proxy=True)


def transparent_request(call: Call) -> tuple[str, dict[str, str]]:
    """The transparent-proxy URL and headers for ``call`` (the target named explicitly)."""
    parts = urlsplit(call.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Authorization": f"Bearer {call.key}",
        "X-Vaultgate-Target": f"{parts.scheme}://{parts.netloc}",
    }
    if call.caller is not None:
        headers["X-Vaultgate-Caller"] = call.caller
    if call.reason is not None:
        headers["X-Vaultgate-Reason"] = call.reason
    return f"{call.vault.base_url}/proxy/{call.grant_id}{path}", headers


async def transparent(call: Call) -> Result:
    url, headers = transparent_request(call)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        response = await client.request(call.method, url, headers=headers)
    if "x-vaultgate-error" not in response.headers:
        return Result(response.status_code, None)
    code = response.json()["detail"]["error"]
    assert response.headers["x-vaultgate-error"] == code
    retry = response.headers.get("retry-after")
    return Result(response.status_code, code, None, int(retry) if retry else None)


CHANNELS: tuple[Channel, ...] = (
    Channel("sdk-retrieve", "retrieve", False, sdk_retrieve),
    Channel("sdk-proxy", "proxy", False, sdk_proxy),
    Channel("sync-retrieve", "retrieve", False, sync_retrieve),
    Channel("official-retrieve", "retrieve", True, official_retrieve),
    Channel("official-proxy", "proxy", True, official_proxy),
    Channel("transparent", "transparent", False, transparent),
)


def channel_ids() -> list[str]:
    return [c.name for c in CHANNELS]
