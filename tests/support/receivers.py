"""Receivers of audit sinks on loopback: a webhook that checks signatures as the README says,
a syslog TCP listener that splits RFC 6587 octet-counted frames, the same over TLS (RFC 5425)
keeping every raw byte it was sent, and a listener that never answers a handshake.

The webhook's check is the README's own snippet (``verify_vaultgate``), extracted and run, so the
documentation a receiver copies is what the tests prove.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

README = Path(__file__).resolve().parents[2] / "README.md"
# One audit event as the README's syslog wire describes it, up to its JSON MSG.
RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>[!-~]+) "
    rb"(?P<app>[!-~]{1,48}) - (?P<msgid>[!-~]{1,32}) "
    rb'\[vaultgate@32473 id="(?P<id>[0-9a-f-]{36})" seq="(?P<seq>\d+)"\] \xef\xbb\xbf\{',
)


def readme_verifier() -> Callable[..., list[dict[str, Any]]]:
    """``verify_vaultgate(secret, headers, body, now=None)`` as the README documents it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    source = next(block for block in blocks if "def verify_vaultgate" in block)
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    verifier: Callable[..., list[dict[str, Any]]] = namespace["verify_vaultgate"]
    return verifier


@dataclass
class WebhookReceiver:
    """Stores the events of every verified delivery; ``hold`` makes it sit on a request."""

    secret: bytes
    port: int = 0
    deliveries: list[list[dict[str, Any]]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    hold: threading.Event | None = None  # set: answer; unset: keep the request waiting
    holding: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/audit"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for batch in self.deliveries for event in batch]

    def unique_in_order(self) -> list[dict[str, Any]]:
        """Every event once (the first copy of each id), as a deduplicating receiver keeps them."""
        seen: set[str] = set()
        kept = []
        for event in self.events():
            if event["id"] not in seen:
                seen.add(event["id"])
                kept.append(event)
        return kept

    def start(self) -> None:
        verify = readme_verifier()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    events = verify(receiver.secret, httpx.Headers(dict(self.headers)), body)
                except ValueError as exc:
                    receiver.rejected.append(str(exc))
                    self._answer(401)
                    return
                with receiver.lock:
                    receiver.deliveries.append(events)
                    receiver.bodies.append(body)
                gate = receiver.hold
                if gate is not None and not gate.is_set():
                    # Stored, but the answer waits: the vault dies before it hears "done".
                    receiver.holding.set()
                    gate.wait(60)
                self._answer(204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def webhook_receiver(
    secret: bytes, port: int = 0, *, started: bool = True
) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret, port)
    if started:
        receiver.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        receiver.stop()


@dataclass
class SyslogListener:
    port: int = 0
    messages: list[bytes] = field(default_factory=list)


def split_octet_counted(stream: bytes) -> list[bytes]:
    """RFC 6587 3.4.1: ``MSG-LEN SP SYSLOG-MSG`` repeated; fails on anything else."""
    messages, at = [], 0
    while at < len(stream):
        space = stream.index(b" ", at)
        length = int(stream[at:space])
        messages.append(stream[space + 1 : space + 1 + length])
        at = space + 1 + length
        assert at <= len(stream), "a frame longer than the stream"
    return messages


@contextmanager
def syslog_listener(host: str = "127.0.0.1") -> Iterator[SyslogListener]:
    """A TCP syslog receiver on ``host`` (an IPv4 or IPv6 address), octet-counted framing."""
    listener = SyslogListener()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            chunks = []
            while data := self.request.recv(65536):
                chunks.append(data)
            listener.messages.extend(split_octet_counted(b"".join(chunks)))

    class Server(socketserver.ThreadingTCPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = Server((host, 0), Handler)
    server.daemon_threads = True
    listener.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class TlsSyslogListener:
    """What a TLS receiver got: frames, refused handshakes, and every byte before decryption."""

    port: int = 0
    messages: list[bytes] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # the reason of each failed handshake
    raw: bytearray = field(default_factory=bytearray)  # as it crossed the wire, all connections
    plaintext: bytearray = field(default_factory=bytearray)  # decrypted, framed or not
    clients: list[str] = field(default_factory=list)  # with client_ca: each verified client's CN
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def tls_syslog_listener(
    cert: Path, key: Path, *, client_ca: Path | None = None
) -> Iterator[TlsSyslogListener]:
    """RFC 5425 on loopback, presenting ``cert``; it reads each connection to its end. With
    ``client_ca`` it requires a client certificate that CA signed (mutual TLS)."""
    listener = TlsSyslogListener()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            _TlsConnection(self.request, context, listener).serve()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    listener.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()


class _TlsConnection:
    """TLS through memory buffers, so the listener sees the raw bytes as well as the clear."""

    def __init__(
        self, conn: socket.socket, context: ssl.SSLContext, listener: TlsSyslogListener
    ) -> None:
        self._conn, self._listener = conn, listener
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    def serve(self) -> None:
        try:
            self._until_done(self._tls.do_handshake)
        except (ssl.SSLError, OSError) as exc:
            with self._listener.lock:
                self._listener.refused.append(getattr(exc, "reason", None) or type(exc).__name__)
            self._flush()
            while self._pump():  # whatever the client sends after the refusal is kept in raw
                pass
            return
        peer = self._tls.getpeercert()
        if peer:
            with self._listener.lock:
                subject = dict(pair[0] for pair in peer["subject"])
                self._listener.clients.append(str(subject.get("commonName")))
        clear = bytearray()
        try:
            while chunk := self._until_done(lambda: self._tls.read(65536)):
                clear += chunk
        except (ssl.SSLError, OSError):
            pass  # cut short without close_notify: keep what came (a frame test then fails)
        with self._listener.lock:
            self._listener.plaintext += clear
            self._listener.messages.extend(split_octet_counted(bytes(clear)))

    def _until_done(self, step: Callable[[], Any]) -> Any:
        while True:
            try:
                return step()
            except ssl.SSLWantReadError:
                if not self._pump():
                    return step()  # at the end of input: a result, or the error saying why
            except ssl.SSLZeroReturnError:
                return b""  # close_notify: the client is done

    def _pump(self) -> bool:
        self._flush()
        data = self._conn.recv(65536)
        with self._listener.lock:
            self._listener.raw += data
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    def _flush(self) -> None:
        # A client gone already is fine: what it sent is recorded.
        if pending := self._outgoing.read():
            with contextlib.suppress(OSError):
                self._conn.sendall(pending)


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port whose connections the kernel accepts and nothing ever reads or answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as sock:
        yield int(sock.getsockname()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_json(message: bytes) -> dict[str, Any]:
    """The JSON MSG of an RFC 5424 message (after the UTF-8 BOM)."""
    result: dict[str, Any] = json.loads(message.split(b"\xef\xbb\xbf", 1)[1])
    return result
