"""Sending one batch to a receiver; any failure raises ``DeliveryFailed`` with a short reason.

The reason is stored as the sink's ``last_error`` and shown to operators: it names the kind of
failure (a status, an exception type), never the body or the secret.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from vaultgate.server.approvals.notify import signature
from vaultgate.server.sinks import formats

TIMESTAMP_HEADER = "X-Vaultgate-Timestamp"
SIGNATURE_HEADER = "X-Vaultgate-Signature"
SINK_HEADER = "X-Vaultgate-Sink"


class DeliveryFailed(Exception):
    """The receiver did not take the batch; the cursor stays, the batch comes again.

    The callers bound each send with ``asyncio.timeout`` (a timeout reads as this, too).
    """


async def post_webhook(
    client: aiohttp.ClientSession,
    url: str,
    key: bytes,
    sink_name: str,
    events: Sequence[dict[str, Any]],
) -> None:
    body = formats.webhook_body(sink_name, events)
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        # The approvals webhook's signing, so receivers check both the same way.
        SIGNATURE_HEADER: signature(key.decode(), stamp, body),
        SINK_HEADER: sink_name,
    }
    try:
        async with client.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
        ) as answer:
            status = answer.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise DeliveryFailed(f"webhook: {type(exc).__name__}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"webhook: HTTP {status}")


async def send_syslog(host: str, port: int, frames: bytes) -> None:
    """One TCP connection per batch: connect, write every frame, flush, close cleanly.

    TCP syslog (RFC 6587) has no acknowledgement; a batch counts as delivered once the kernel
    took every byte and the connection closed without error.
    """
    try:
        _, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(frames)
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
    except OSError as exc:
        raise DeliveryFailed(f"syslog: {type(exc).__name__}") from None


def append_file(path: str, data: bytes) -> None:
    """Append and fsync (call in a thread): the batch is on disk before the cursor moves."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DeliveryFailed(f"file: {type(exc).__name__}: {exc.strerror}") from None
