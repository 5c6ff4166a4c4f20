"""An upstream that answers before reading the body and then resets, met by the real client.

The same race as tests/functional/injection/test_proxy_framing.py's, one level down and over TLS
too: the upstream reads the head, sends a 413 and closes with SO_LINGER 0 (RST) while the client
is still sending a body larger than the socket buffers. Repeated, and the client before the fix
lost all but one or two of the 30 answers, over TLS as well as without.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import ssl
import struct
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.wire import wait_sent
from vaultgate.server.egress import AddressGuard, UpstreamClient, UpstreamTimeouts, parse_target
from vaultgate.server.errors import BadGateway

from .conftest import LOOPBACK, fake_resolve

REFUSAL = b'{"error":"too large, said early"}'
ANSWER = (
    b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n" % len(REFUSAL) + REFUSAL
)
LARGE = 8 << 20
REPEATS = 30
TIMEOUTS = UpstreamTimeouts(connect=30, read=30, first_byte=30)

Start = Callable[[bool, bool], int]


def _tls_pair(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for upstream.test; a client trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("upstream.test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return _tls_pair(tmp_path)


@pytest.fixture
def resetting(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[Start]:
    """Starts an upstream that reads the head, answers (or not) and resets; returns its port.

    It runs in a thread of its own, as a real upstream would: the reset then reaches the client
    whenever it happens to, not at a point of the client's event loop.
    """
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def serve(listener: socket.socket, answer: bool, secure: bool) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            with conn:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio's are
                try:
                    peer = tls[0].wrap_socket(conn, server_side=True) if secure else conn
                except OSError:
                    continue
                with peer:
                    _answer(peer, answer)

    def start(answer: bool, secure: bool) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        thread = threading.Thread(target=serve, args=(listener, answer, secure), daemon=True)
        thread.start()
        threads.append(thread)
        return int(listener.getsockname()[1])

    yield start
    for listener in listeners:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
    for thread in threads:
        thread.join(timeout=30)


def _answer(peer: socket.socket, answer: bool) -> None:
    """Reads the head, sends the answer if any; closing then resets (SO_LINGER 0)."""
    head = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in head and (chunk := peer.recv(65536)):
            head += chunk
        if answer:
            peer.sendall(ANSWER)
            wait_sent(peer)


@pytest.fixture
async def tls_client(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[UpstreamClient]:
    guard = AddressGuard(LOOPBACK, resolve=fake_resolve)
    async with UpstreamClient(guard, ssl_context=tls[1]) as upstream_client:
        yield upstream_client


async def _large_body() -> AsyncIterator[bytes]:
    """As a caller's body reaches the vault: piece by piece, the event loop running between."""
    piece = b"r" * 65536
    for _ in range(LARGE // len(piece)):
        await asyncio.sleep(0)
        yield piece


async def _outcome(client: UpstreamClient, url: str) -> str:
    headers = [("Content-Length", str(LARGE))]
    try:
        response = await client.send(
            "POST", parse_target(url), headers, _large_body(), timeout=TIMEOUTS
        )
    except BadGateway as exc:
        return exc.code
    async with response:
        return f"{response.status} {'relayed' if await response.read(1000) == REFUSAL else '?'}"


async def test_an_early_answer_before_a_reset_is_read_every_time(
    client: UpstreamClient, resetting: Start
) -> None:
    port = resetting(True, False)
    seen = Counter(
        [await _outcome(client, f"http://upstream.test:{port}/") for _ in range(REPEATS)]
    )
    assert seen == {"413 relayed": REPEATS}


async def test_over_tls_too(tls_client: UpstreamClient, resetting: Start) -> None:
    port = resetting(True, True)
    url = f"https://upstream.test:{port}/"
    seen = Counter([await _outcome(tls_client, url) for _ in range(REPEATS)])
    assert seen == {"413 relayed": REPEATS}


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_reset_without_an_answer_is_still_bad_gateway(
    scheme: str, client: UpstreamClient, tls_client: UpstreamClient, resetting: Start
) -> None:
    port = resetting(False, scheme == "https")
    chosen = tls_client if scheme == "https" else client
    url = f"{scheme}://upstream.test:{port}/"
    assert Counter([await _outcome(chosen, url) for _ in range(5)]) == {"upstream_error": 5}
