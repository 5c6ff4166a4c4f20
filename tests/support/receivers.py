"""Receivers of audit sinks on loopback: a webhook that checks signatures as the README says,
and a syslog TCP listener that splits RFC 6587 octet-counted frames.

The webhook's check is the README's own snippet (``verify_vaultgate``), extracted and run, so the
documentation a receiver copies is what the tests prove.
"""

from __future__ import annotations

import json
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

README = Path(__file__).resolve().parents[2] / "README.md"


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
def syslog_listener() -> Iterator[SyslogListener]:
    listener = SyslogListener()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            chunks = []
            while data := self.request.recv(65536):
                chunks.append(data)
            listener.messages.extend(split_octet_counted(b"".join(chunks)))

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    listener.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_json(message: bytes) -> dict[str, Any]:
    """The JSON MSG of an RFC 5424 message (after the UTF-8 BOM)."""
    result: dict[str, Any] = json.loads(message.split(b"\xef\xbb\xbf", 1)[1])
    return result
