"""A loopback upstream that records the bytes on the wire, for framing and fairness tests.

`tests/support/servers.py`'s upstream goes through ``http.server``, which re-reads the framing
for you; this one keeps each request's head and body bytes as they arrived, and can misbehave on
purpose: answer before reading the body, hang until released, echo the credential back.

Behaviour is chosen by path prefix:

- ``/echo``      read the whole request, answer 200 with a small JSON body
- ``/early-413`` read the head only, answer 413 at once and close (lingering, as nginx does)
- ``/early-413-reset`` read the head only, answer 413 at once and reset the connection (RST)
- ``/reset``     read the head only and reset the connection without answering
- ``/hang``      read the request, then wait until `WireUpstream.release` is called
- ``/reflect``   answer 200 echoing every request header back in the body and in ``X-Echo``
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

WAIT = 30.0  # seconds: generous, only ever spent when the awaited event never happens
REFUSAL = b'{"error":"too large, said early"}'  # the body of every early 413


@dataclass
class WireRequest:
    head: bytes
    body: bytes = b""
    complete: bool = False  # the whole body as framed arrived

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def method(self) -> str:
        return self.request_line.split(" ", 1)[0]

    @property
    def headers(self) -> list[tuple[str, str]]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        pairs = [line.split(":", 1) for line in lines if ":" in line]
        return [(name.strip().lower(), value.strip()) for name, value in pairs]

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)


@dataclass
class WireUpstream:
    port: int = 0
    requests: list[WireRequest] = field(default_factory=list)
    open_connections: int = 0
    max_open: int = 0
    closed_connections: int = 0
    hanging: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _loop: asyncio.AbstractEventLoop | None = None
    _release: asyncio.Event | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, condition: Callable[[WireUpstream], bool], timeout: float = WAIT) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: condition(self), timeout=timeout):
                raise AssertionError("the upstream never reached the awaited state")

    def release(self) -> None:
        """Let every ``/hang`` request answer (200)."""
        assert self._loop is not None and self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    def reset(self) -> None:
        with self._cond:
            self.requests.clear()
            self.max_open = self.open_connections

    def _update(self, **deltas: int) -> None:
        with self._cond:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
            self.max_open = max(self.max_open, self.open_connections)
            self._cond.notify_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._update(open_connections=1)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
            self._update(open_connections=-1, closed_connections=1)

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        request = WireRequest(head)
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        path = request.request_line.split(" ")[1]
        if path.startswith("/early-413-reset"):
            writer.write(_response(413, REFUSAL, [("Connection", "close")]))
            await writer.drain()
            await _sent(writer)
            _reset(writer)
            return False
        if path.startswith("/reset"):
            _reset(writer)
            return False
        if path.startswith("/early-413"):
            await self._early(reader, writer)
            return False
        await self._read_body(reader, request)
        if path.startswith("/hang"):
            await self._hang(reader)
        if path.startswith("/reflect"):
            body = json.dumps(request.headers).encode()
            extra = [("X-Echo", "; ".join(f"{n}={v}" for n, v in request.headers))]
        else:
            body = json.dumps({"ok": True, "bytes": len(request.body)}).encode()
            extra = []
        writer.write(_response(200, body, extra))
        await writer.drain()
        return True

    async def _read_body(self, reader: asyncio.StreamReader, request: WireRequest) -> None:
        length = request.header("content-length")
        if length is not None:
            request.body = await reader.readexactly(int(length))
        elif (request.header("transfer-encoding") or "").lower() == "chunked":
            request.body = await _read_chunked(reader)
        with self._cond:
            request.complete = True
            self._cond.notify_all()

    async def _early(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """413 before reading the body, then a lingering close: stop sending, drain, close."""
        writer.write(_response(413, REFUSAL, [("Connection", "close")]))
        await writer.drain()
        writer.write_eof()
        with suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(WAIT):
                while await reader.read(65536):
                    pass

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        assert self._release is not None
        self._update(hanging=1)
        try:
            # Returns early when the vault drops the connection (EOF), as a server would notice.
            gone = asyncio.ensure_future(reader.read(1))
            released = asyncio.ensure_future(self._release.wait())
            done, pending = await asyncio.wait(
                {gone, released}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if gone in done:
                raise ConnectionResetError("the vault went away")
        finally:
            self._update(hanging=-1)


# Linux's SIOCOUTQNSD (linux/sockios.h): the bytes a socket holds that were not sent yet.
_SIOCOUTQNSD = 0x894B


def unsent(sock: socket.socket | Any) -> int:
    """What the kernel still holds back of what was written to ``sock``.

    A reset discards those bytes (Nagle's algorithm may hold a small answer back behind an
    unacknowledged one): an answer lost that way was never sent, which is not the case under
    test, so the resetting upstreams wait for this to be 0 first.
    """
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQNSD, b"\0" * 4))[0])


def wait_sent(sock: socket.socket | Any) -> None:
    """Returns once the kernel has sent all that was written to ``sock`` (see `unsent`)."""
    deadline = time.monotonic() + WAIT
    while unsent(sock):
        if time.monotonic() > deadline:
            raise AssertionError("the answer never left the upstream")
        time.sleep(0.001)


async def _sent(writer: asyncio.StreamWriter) -> None:
    """`wait_sent` without blocking the upstream's loop."""
    sock = writer.get_extra_info("socket")
    async with asyncio.timeout(WAIT):
        while unsent(sock):
            await asyncio.sleep(0.001)


def _reset(writer: asyncio.StreamWriter) -> None:
    """An abrupt close: with SO_LINGER 0 the kernel sends RST at once (as it does for any close
    with the request body still unread), while the vault is still writing that body."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    raw = b""
    while True:
        line = await reader.readuntil(b"\r\n")
        raw += line
        size = int(line.split(b";")[0].strip() or b"0", 16)
        data = await reader.readexactly(size + 2)
        raw += data
        if size == 0:
            return raw


def _response(status: int, body: bytes, extra: list[tuple[str, str]]) -> bytes:
    reason = {200: "OK", 413: "Payload Too Large"}.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in extra]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@contextmanager
def run_wire_upstream() -> Iterator[WireUpstream]:
    upstream = WireUpstream()
    started = threading.Event()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        upstream._loop = asyncio.get_running_loop()
        upstream._release = asyncio.Event()
        stop.append(asyncio.Event())
        server = await asyncio.start_server(upstream._serve, "127.0.0.1", 0, limit=1 << 20)
        upstream.port = server.sockets[0].getsockname()[1]
        started.set()
        async with server:
            await stop[0].wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert started.wait(WAIT), "the wire upstream did not start"
    try:
        yield upstream
    finally:
        assert upstream._loop is not None
        upstream._loop.call_soon_threadsafe(upstream._release.set)  # type: ignore[union-attr]
        upstream._loop.call_soon_threadsafe(stop[0].set)
        thread.join(timeout=WAIT)
