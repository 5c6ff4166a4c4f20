"""Sending one batch to a receiver; any failure raises ``DeliveryFailed`` with a short reason.

The reason is stored as the sink's ``last_error`` and shown to operators: it names the kind of
failure (a status, an exception type), never the body or the secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import stat
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiohttp

from vaultgate.server.approvals.notify import signature
from vaultgate.server.sinks import formats

TIMESTAMP_HEADER = "X-Vaultgate-Timestamp"
SIGNATURE_HEADER = "X-Vaultgate-Signature"
SINK_HEADER = "X-Vaultgate-Sink"
T = TypeVar("T")


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


class TlsFileError(ValueError):
    """A syslog sink's ``ca_file``, ``cert_file`` or ``key_file`` cannot be used; the message
    says why, never the content, and ``field`` names the config key at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _no_passphrase() -> bytes:
    # Without a callback, OpenSSL asks for an encrypted key's passphrase on the terminal: a
    # server would hang on it. An empty one makes such a key fail to load, with an error.
    return b""


def tls_context(
    ca_file: str | None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """The client side of RFC 5425: the chain and the host name verified, TLS 1.2 or later.

    ``ca_file`` (a PEM bundle) is then the only trust anchor; without it, the system's store.
    ``cert_file`` and ``key_file`` (PEM, the key unencrypted) are the vault's own certificate,
    for a receiver that authenticates its clients (mutual TLS, as rsyslog's ``x509/name`` mode).
    It reads files: call it in a thread on the event loop.
    """
    for field, path in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
        if path is not None:
            _regular_file(field, path)
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise TlsFileError("ca_file", "not a PEM file of CA certificates") from None
        raise TlsFileError("ca_file", f"cannot be read ({type(exc).__name__})") from None
    if ca_file is not None and not context.get_ca_certs():
        # A PEM of CRLs alone loads "fine".
        raise TlsFileError("ca_file", "holds no CA certificate")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        _load_client_certificate(context, cert_file, key_file or cert_file)
    return context


def _regular_file(field: str, path: str) -> None:
    """A readable regular file: opening a FIFO (or a device) would block the thread that loads
    it, past any timeout of the caller's."""
    try:
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a directory: open() names it
            raise TlsFileError(field, "is not a regular file")
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TlsFileError(field, f"cannot be read ({type(exc).__name__})") from None


def _load_client_certificate(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise TlsFileError("key_file", "is not the key of cert_file's certificate") from None
        raise TlsFileError(
            "cert_file",
            "cert_file and key_file must be a PEM certificate (chain) and its unencrypted "
            "private key",
        ) from None


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
    delivered once the transport took every byte and the connection closed without error (over
    TLS: the receiver's end reached after our close_notify, with no alert before it).
    """
    try:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            if tls is None:
                writer.write(frames)
                await writer.drain()
            else:
                await _TlsSession(reader, writer, tls, server_name or host).send(frames)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryFailed(f"syslog: certificate verify failed: {exc.verify_message}") from None
    except ssl.SSLError as exc:
        raise DeliveryFailed(f"syslog: TLS failed: {exc.reason or type(exc).__name__}") from None
    except OSError as exc:
        raise DeliveryFailed(f"syslog: {type(exc).__name__}") from None
    except ValueError:  # a name the resolver cannot encode (idna), stored by an older vault
        raise DeliveryFailed("syslog: the host or server_name is not a valid name") from None


class _TlsSession:
    """TLS over a plain stream through memory buffers (``ssl.SSLObject``).

    Not asyncio's own TLS transport: its ``close()`` sends close_notify and drops whatever the
    receiver says next. Under TLS 1.3 the client's handshake is done before the receiver has
    judged the client's certificate, so a receiver that refuses it (none sent, expired, another
    CA) says so in an alert that arrives after the frames; with asyncio's transport that batch
    counted as delivered and was lost. Here the frames, then close_notify, then everything the
    receiver sends is read up to its end: an alert on the way fails the batch.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        server_name: str,
    ) -> None:
        self._reader, self._writer = reader, writer
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_name)

    async def send(self, frames: bytes) -> None:
        await self._step(self._tls.do_handshake)
        await self._step(lambda: self._tls.write(frames))  # SSLObject.write takes it whole
        # Our close_notify; the receiver's own is not waited for: OpenSSL's shutdown would
        # take a fatal alert for one. Reading on is what tells them apart.
        with contextlib.suppress(ssl.SSLWantReadError):
            self._tls.unwrap()
        await self._flush()
        with contextlib.suppress(ssl.SSLZeroReturnError, ssl.SSLEOFError):
            # close_notify, or an end without one: the batch was taken. Data is ignored.
            while await self._step(lambda: self._tls.read(65536)):
                pass

    async def _step(self, operation: Callable[[], T]) -> T:
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self._reader.read(65536)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            await self._flush()
            return result

    async def _flush(self) -> None:
        if pending := self._outgoing.read():
            self._writer.write(pending)
            await self._writer.drain()


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
