"""The light HTTP/1.1 transport of ``SyncVault``: ``_lane``'s blocking twin.

Keep-alive connections on plain blocking sockets, framed and parsed by ``_http11``, each
request written in one send. It answers
fully read responses; ``stream()`` keeps httpx's transport. ``SyncLane`` serves one origin (the
vault, or one provider); ``SyncLanes`` keeps one per provider origin. Several threads may share
a lane (the caller's and the report thread): a connection belongs to one request at a time.

Failures surface as httpx's exceptions (``ConnectError``, ``ReadTimeout``...), the same classes
httpx's own transport raised here before, so the client maps them to the same ``NetworkError``
and ``TimeoutError``. Timeouts mean what they mean in httpx: ``connect`` for the TCP and TLS
set-up, ``write`` for each send, ``read`` for each wait for answer bytes.

A kept-alive connection can be closed by the server at any moment (its idle timeout). An idle
connection is checked before reuse (readable means closed or out of step: it is dropped); one
that the server closes in the race between that check and the request is ``Stale``: it failed
before any byte of the answer arrived. Only then, and only for a request that is safe to send
twice, the request is sent once more on a fresh connection (see ``_lane.replay``).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from typing import Final

import h11
import httpx

from ._http11 import Answer, Closed, ProtocolError, read_answer, request_bytes
from ._lane import MAX_IDLE, MAX_ORIGINS, READ_SIZE, Stale, replay, tls_context

_POLL: Final = getattr(select, "poll", None)


def _readable(sock: socket.socket) -> bool:
    """True when a read would not block: the peer closed, or sent what nobody asked for."""
    if _POLL is not None:
        poller = _POLL()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])  # pragma: no cover - Windows


class _Connection:
    __slots__ = ("kept", "reused", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reused = False
        self.kept = False

    def exchange(self, request: httpx.Request, timeout: dict[str, float | None]) -> httpx.Response:
        wire = request_bytes(
            request.method, request.url.raw_path, request.headers.raw, request.read()
        )
        sock = self.sock
        sock.settimeout(timeout.get("write"))
        try:
            sock.sendall(wire)
        except (BrokenPipeError, ConnectionResetError):
            raise Stale from None
        except TimeoutError:
            raise httpx.WriteTimeout("timed out sending the request", request=request) from None
        sock.settimeout(timeout.get("read"))
        reader = read_answer(request.method)
        next(reader)
        started = False
        try:
            while True:
                try:
                    data = sock.recv(READ_SIZE)
                except ConnectionResetError:
                    if not started:
                        raise Stale from None
                    raise
                if not data and not started:
                    raise Stale
                started = True
                reader.send(data)
        except StopIteration as done:
            answer: Answer = done.value
        except Closed:
            raise httpx.RemoteProtocolError(
                "the server closed the connection mid-answer", request=request
            ) from None
        self.kept = answer.reusable
        return answer.response(request)

    def close(self) -> None:
        self.sock.close()


class SyncLane(httpx.BaseTransport):
    """Requests to one origin (``http://`` or ``https://``, verified as httpx verifies)."""

    def __init__(self, base_url: str, *, idempotent_replay: bool = False) -> None:
        url = httpx.URL(base_url)
        self._host = url.host
        self._tls = url.scheme == "https"
        self._port = url.port or (443 if self._tls else 80)
        self._ssl: ssl.SSLContext | None = tls_context() if self._tls else None
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._idempotent_replay = idempotent_replay

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        connection = self._take() or self._open(request, timeout.get("connect"))
        try:
            return self._exchange(connection, request, timeout)
        except Stale:
            again = replay(request, idempotent=self._idempotent_replay)
            if not connection.reused or again is None:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection without answering", request=request
                ) from None
        # Found closed before any byte of the answer: once more, on a new connection.
        connection = self._open(again, timeout.get("connect"))
        try:
            return self._exchange(connection, again, timeout)
        except Stale:
            raise httpx.RemoteProtocolError(
                "the server closed the connection without answering", request=again
            ) from None

    def _exchange(
        self, connection: _Connection, request: httpx.Request, timeout: dict[str, float | None]
    ) -> httpx.Response:
        try:
            response = connection.exchange(request, timeout)
        except TimeoutError:
            connection.close()
            raise httpx.ReadTimeout("timed out waiting for the answer", request=request) from None
        except (Stale, httpx.TransportError):
            connection.close()
            raise
        except ProtocolError as exc:
            connection.close()
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        except h11.LocalProtocolError as exc:
            connection.close()
            raise httpx.LocalProtocolError(str(exc), request=request) from None
        except OSError as exc:
            connection.close()
            message = f"the connection failed: {type(exc).__name__}"
            raise httpx.ReadError(message, request=request) from None
        if connection.kept:
            connection.reused = True
            with self._lock:
                if len(self._idle) < MAX_IDLE:
                    self._idle.append(connection)
                    return response
        connection.close()
        return response

    def _take(self) -> _Connection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            if not _readable(connection.sock):
                return connection
            connection.close()

    def _open(self, request: httpx.Request, seconds: float | None) -> _Connection:
        try:
            sock = socket.create_connection((self._host, self._port), timeout=seconds)
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out connecting", request=request) from None
        except OSError as exc:
            message = f"could not connect: {type(exc).__name__}"
            raise httpx.ConnectError(message, request=request) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl is not None:
            try:
                sock = self._ssl.wrap_socket(sock, server_hostname=self._host)
            except TimeoutError:
                sock.close()
                message = "timed out in the TLS handshake"
                raise httpx.ConnectTimeout(message, request=request) from None
            except OSError as exc:  # ssl.SSLError included: a certificate that fails to verify
                sock.close()
                message = f"the TLS handshake failed: {type(exc).__name__}"
                raise httpx.ConnectError(message, request=request) from None
        return _Connection(sock)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class SyncLanes(httpx.BaseTransport):
    """A lane per origin, for ``request()``'s provider calls (few origins, many calls each)."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str, int | None], SyncLane] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.scheme, url.host, url.port)
        lane = self._lanes.get(key)
        if lane is None:
            with self._lock:
                lane = self._lanes.get(key)
                if lane is None:
                    if len(self._lanes) >= MAX_ORIGINS:
                        self._lanes.pop(next(iter(self._lanes))).close()
                    origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
                    lane = self._lanes[key] = SyncLane(origin, idempotent_replay=True)
        return lane.handle_request(request)

    def close(self) -> None:
        with self._lock:
            lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            lane.close()
