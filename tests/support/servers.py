"""Real servers on loopback for functional tests: the vault itself and a recording upstream."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from vaultgate.server.api.connections import server_options
from vaultgate.server.app import create_app
from vaultgate.server.bootstrap import initialise
from vaultgate.server.settings import load_settings


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Upstream:
    """A threaded HTTP/1.1 server that records every request and answers per path."""

    port: int
    requests: list[Recorded] = field(default_factory=list)
    # ``/gated-sse...`` sends its first event, then waits for this before sending the rest, so a
    # test can prove events are relayed as they come (set it once the first event has arrived).
    gate: threading.Event = field(default_factory=threading.Event)
    gate_timed_out: bool = False
    # The next this-many requests are answered 503 (a receiver that is briefly down).
    fail_next: int = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last(self) -> Recorded:
        assert self.requests, "the upstream received nothing"
        return self.requests[-1]


def _handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _record(self) -> Recorded:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                body = self._read_chunked()
            rec = Recorded(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                list(self.headers.items()),
                body,
            )
            upstream.requests.append(rec)
            return rec

        def _read_chunked(self) -> bytes:
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()

        def _answer(self) -> None:
            rec = self._record()
            if upstream.fail_next > 0:
                upstream.fail_next -= 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.startswith("/redirect-to/"):
                # /redirect-to/<port>: a 302 to another loopback server (the "evil" one).
                self._redirect(f"http://127.0.0.1:{self.path.split('/')[2]}/stolen")
                return
            if self.path.startswith("/gated-sse"):
                self._gated_sse()
                return
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:1/stolen")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.startswith("/sse"):
                self._sse()
                return
            status = 200
            if self.path.startswith("/status/"):
                status = int(self.path.split("?")[0].split("/")[2])
            payload = json.dumps({"ok": True, "path": rec.path, "method": rec.method}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _gated_sse(self) -> None:
            """Chat-completion chunks in the OpenAI shape; the 2nd waits on ``upstream.gate``."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                if i == 1 and not upstream.gate.wait(timeout=20):
                    upstream.gate_timed_out = True
                chunk = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [{"index": 0, "delta": {"content": f"e{i}"}, "finish_reason": None}],
                }
                self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            self._chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")

        def _sse(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                data = f'data: {{"n": {i}}}\n\n'.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

    return Handler


@contextmanager
def run_upstream() -> Iterator[Upstream]:
    upstream = Upstream(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream))
    upstream.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Vault:
    base_url: str
    admin_key: str
    portal_user: str
    portal_password: str
    data_dir: Path
    env: dict[str, str]

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            trust_env=False,
            timeout=30,
            headers={"Authorization": f"Bearer {self.admin_key}"},
        )

    def make_app_key(self, name: str = "app") -> tuple[str, str]:
        """A new app and one key of it: (app_id, api_key)."""
        with self.admin() as client:
            app = client.post("/v1/apps", json={"name": name}).json()
            key = client.post(f"/v1/apps/{app['id']}/keys", json={"name": "k"}).json()
        return app["id"], key["api_key"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def run_vault(
    data_dir: Path, database_url: str | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[Vault]:
    env = {
        "VAULTGATE_DATA_DIR": str(data_dir),
        "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8",
        **(extra_env or {}),
    }
    if database_url:
        env["VAULTGATE_DATABASE_URL"] = database_url
    # Bound now and handed to uvicorn: a port only picked here could be taken (by another
    # test's connection) while the vault initialises, and the start then failed on bind.
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        port = int(listener.getsockname()[1])
        settings = load_settings(env, port=port)
        result = initialise(settings)
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            **server_options(settings),  # the header deadline and connection cap, as `serve` has
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[listener])), daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the vault did not start")
            time.sleep(0.02)
        try:
            yield Vault(
                f"http://127.0.0.1:{port}",
                result.admin_key,
                result.portal_user,
                result.portal_password,
                data_dir,
                env,
            )
        finally:
            server.should_exit = True
            thread.join(timeout=15)
