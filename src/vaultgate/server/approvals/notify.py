"""Announcing a new pending approval to a webhook, so a team can route it to chat.

The body is JSON; ``X-Vaultgate-Signature: sha256=<hex>`` is HMAC-SHA256 over
``<timestamp>.<body>`` with the configured secret, ``X-Vaultgate-Timestamp`` the Unix time, so a
receiver can refuse forgeries and replays. Delivery retries with exponential backoff on network
errors, 429 and 5xx; it never blocks or fails the held call, and never carries its body or headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp

from vaultgate.server.approvals.errors import ApprovalRequired
from vaultgate.server.approvals.models import HeldRequest
from vaultgate.server.egress.pipeline import UseRequest

log = logging.getLogger("vaultgate.approvals")
ATTEMPTS = 5


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class Notifier:
    def __init__(self, url: str | None, secret: str | None, *, backoff: float = 1.0) -> None:
        self._url = url
        self._secret = secret or ""
        self._backoff = backoff
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"Notifier(url={'set' if self._url else None}, secret=***)"

    def announce(self, payload: dict[str, Any]) -> None:
        """Deliver in the background (call on the event loop); a no-op when no URL is set."""
        if not self._url:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(self._url, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        # aiohttp, the server's HTTP client (httpx stays the SDK's; workers never load it).
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as client:
            for attempt in range(ATTEMPTS):
                if await self._attempt(client, url, body):
                    return
                if attempt + 1 < ATTEMPTS:
                    await asyncio.sleep(self._backoff * 2**attempt)
        log.warning("approval webhook: gave up after %d attempts", ATTEMPTS)

    async def _attempt(self, client: aiohttp.ClientSession, url: str, body: bytes) -> bool:
        """Whether to stop: delivered, or refused for good (a 4xx other than 429)."""
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Vaultgate-Timestamp": stamp,
            "X-Vaultgate-Signature": signature(self._secret, stamp, body),
        }
        try:
            async with client.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("approval webhook: %s", type(exc).__name__)
            return False
        if status < 300:
            return True
        if 400 <= status < 500 and status != 429:
            log.warning("approval webhook refused with %d; not retried", status)
            return True
        return False

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def announcement(
    pending: dict[str, Any], use: UseRequest, held: ApprovalRequired, call: HeldRequest
) -> dict[str, Any]:
    """The webhook's body: enough to route and link, never the call's headers or body."""
    return {
        "event": "approval.requested",
        "approval_id": pending["approval_id"],
        "approval_group_id": pending["approval_group_id"],
        "approval_url": pending["approval_url"],
        "expires_at": pending["expires_at"],
        "approvals_required": held.approvals,
        "app_id": use.principal.app_id,
        "grant_id": use.grant_id,
        "method": call.method,
        "host": use.target.netloc,
        "path": use.target.path,
        "caller": use.caller,
        "reason": use.reason,
    }
