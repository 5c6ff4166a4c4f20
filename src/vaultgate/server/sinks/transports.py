"""Sending one batch to a receiver; any failure raises ``DeliveryFailed`` with a short reason.

The reason is stored as the sink's ``last_error`` and shown to operators: it names the kind of
failure (a status, an exception type), never the body or the secret.
"""

from __future__ import annotations

import asyncio
import os
import ssl
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


class CaFileError(ValueError):
    """A syslog sink's ``ca_file`` cannot be used; the message says why, never the content."""


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The client side of RFC 5425: the chain and the host name verified, TLS 1.2 or later.

    ``ca_file`` (a PEM bundle) is then the only trust anchor; without it, the system's store.
    It reads a file: call it in a thread on the event loop.
    """
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise CaFileError("not a PEM file of CA certificates") from None
        raise CaFileError(f"cannot be read ({type(exc).__name__})") from None
    if ca_file is not None and not context.get_ca_certs():
        raise CaFileError("holds no CA certificate")  # a PEM of CRLs alone loads "fine"
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def send_syslog(
    host: str,
    port: int,
    frames: bytes,
    *,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> None:
    """One connection per batch: connect (and with ``tls``, finish the handshake, which checks
    the receiver's certificate), write every frame, flush, close cleanly.

    TCP syslog (RFC 6587, and RFC 5425 over TLS) has no acknowledgement; a batch counts as
    delivered once the transport took every byte and the connection closed without error.
    """
    try:
        _, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=(server_name or host) if tls else None
        )
        try:
            writer.write(frames)
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryFailed(f"syslog: certificate verify failed: {exc.verify_message}") from None
    except ssl.SSLError as exc:
        raise DeliveryFailed(f"syslog: TLS failed: {exc.reason or type(exc).__name__}") from None
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
