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

``pipeline`` writes several requests back to back on each of a few connections and then reads
their answers in order (HTTP/1.1 pipelining, RFC 9112 9.3.2): the report thread's way to keep up
with many caller threads, a write and a few reads per connection and batch instead of per
report (see ``_reports``).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import h11
import httpx

from ._http11 import Answer, Closed, ProtocolError, Reply, read_answer, request_bytes
from ._lane import MAX_IDLE, MAX_ORIGINS, READ_SIZE, Stale, replay, tls_context

_POLL: Final = getattr(select, "poll", None)
# What one pipelined write may carry: the server reads a pipeline one request at a time, so
# what it has not read yet waits in the sockets' buffers while this thread is still writing and
# not yet reading; well under the smallest usual buffers, the write never waits on the reads.
PIPELINE_BYTES: Final = 64 * 1024
PIPELINES: Final = 8  # connections one batch may use at once
PIPELINE_DEPTH: Final = 4  # requests per connection before another one is used


@dataclass(slots=True)
class Sent:
    """One pipelined request's fate: its ``answer``, or the ``error`` that left it without
    one. ``resent``: its bytes went out twice (see ``SyncLane.pipeline``)."""

    answer: Answer | None = None
    error: httpx.TransportError | None = None
    resent: bool = False


class _Cut(Exception):
    """The connection ended before every pipelined request had its answer; what came is kept."""


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

    def exchange(self, request: httpx.Request, timeout: dict[str, float | None]) -> Answer:
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
        return answer

    def write(self, wires: Sequence[bytes], timeout: dict[str, float | None]) -> Exception | None:
        """A pipeline's requests in one send; what failed (``_Cut``: closed by the server)."""
        self.kept = False
        self.sock.settimeout(timeout.get("write"))
        try:
            self.sock.sendall(b"".join(wires))
        except (BrokenPipeError, ConnectionResetError):
            return _Cut()
        except OSError as exc:  # TimeoutError included
            return exc
        return None

    def read(
        self, requests: Sequence[httpx.Request], timeout: dict[str, float | None]
    ) -> tuple[list[Answer], Exception | None]:
        """The written pipeline's answers, in order: those that came (the first ones), and what
        stopped the reading (None: all came, or an answer said the connection ends after it)."""
        self.sock.settimeout(timeout.get("read"))
        answers: list[Answer] = []
        buf = bytearray()  # shared by the readers: what follows one answer starts the next
        for request in requests:
            try:
                answer = self._read_one(request.method, buf)
            except (Closed, ConnectionResetError):
                return answers, _Cut()
            except (ProtocolError, OSError) as exc:
                return answers, exc
            answers.append(answer)
            if not answer.keep:
                return answers, None
        self.kept = not buf
        return answers, None

    def _read_one(self, method: str, buf: bytearray) -> Answer:
        reader = read_answer(method, buf)
        try:
            next(reader)
            while True:
                data = self.sock.recv(READ_SIZE)
                reader.send(data)
        except StopIteration as done:
            answer: Answer = done.value
            return answer

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
        answer, sent = self._answered(request)
        return answer.response(sent)

    def reply(self, request: httpx.Request) -> Reply | httpx.Response:
        """The answer as ``Answer.reply`` gives it (a vault answer read as JSON)."""
        answer, sent = self._answered(request)
        return answer.reply(sent)

    def _answered(self, request: httpx.Request) -> tuple[Answer, httpx.Request]:
        """The answer, and the request it answers (``request``, or the one replayed)."""
        timeout = request.extensions.get("timeout", {})
        connection = self._take() or self._open(request, timeout.get("connect"))
        try:
            return self._exchange(connection, request, timeout), request
        except Stale:
            again = replay(request, idempotent=self._idempotent_replay)
            if not connection.reused or again is None:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection without answering", request=request
                ) from None
        # Found closed before any byte of the answer: once more, on a new connection.
        connection = self._open(again, timeout.get("connect"))
        try:
            return self._exchange(connection, again, timeout), again
        except Stale:
            raise httpx.RemoteProtocolError(
                "the server closed the connection without answering", request=again
            ) from None

    def pipeline(self, requests: Sequence[httpx.Request]) -> list[Sent]:
        """Send ``requests`` pipelined and tell each one's fate, in order; never raises a
        transport failure.

        The vault serves a connection's requests one after the other, so they are spread over
        up to ``PIPELINES`` connections at once (``PIPELINE_DEPTH`` requests each before one
        more is used; at most ``PIPELINE_BYTES`` in one write), all written before any answer
        is read: the vault serves the connections side by side while this thread waits.

        A connection may end before every request on it is answered: closed idle by the server
        (``Stale``), after an answer with ``Connection: close``, or cut mid-answer. Whether the
        server processed the unanswered requests cannot be known; their very bytes (the same
        signature and nonce) then go out again on a new connection, as long as the connection
        answered at least one (else once more, on a fresh one, after a reused one). So every
        request must be one the server recognises when it arrives twice: the vault's replay
        check records a signed request at most once, and refuses the second copy. A timeout,
        a malformed answer or any other failure is not retried: the rest share its error.
        """
        results = [Sent() for _ in requests]
        wires = [request_bytes(r.method, r.url.raw_path, r.headers.raw, r.read()) for r in requests]
        pending = [_Pipe(group) for group in _groups(wires)]
        while pending:
            now, pending = pending[:PIPELINES], pending[PIPELINES:]
            written = [pipe for pipe in now if self._write(pipe, requests, wires, results)]
            pending = [pipe for pipe in written if self._read(pipe, requests, results)] + pending
        return results

    def _write(
        self,
        pipe: _Pipe,
        requests: Sequence[httpx.Request],
        wires: Sequence[bytes],
        results: list[Sent],
    ) -> bool:
        """Open or take a connection for ``pipe`` and write it; False when it failed for good."""
        first = requests[pipe.waiting[0]]
        timeout = first.extensions.get("timeout", {})
        connection = None if pipe.fresh_only else self._take()
        if connection is None:
            try:
                connection = self._open(first, timeout.get("connect"))
            except httpx.TransportError as exc:
                _fail(results, pipe.waiting, exc)
                return False
        pipe.connection = connection
        pipe.stop = connection.write([wires[i] for i in pipe.waiting], timeout)
        return True

    def _read(self, pipe: _Pipe, requests: Sequence[httpx.Request], results: list[Sent]) -> bool:
        """Read ``pipe``'s answers; True when what is left unanswered goes out again."""
        connection, waiting = pipe.connection, pipe.waiting
        assert connection is not None
        answers: list[Answer] = []
        stop = pipe.stop
        if stop is None:
            timeout = requests[waiting[0]].extensions.get("timeout", {})
            answers, stop = connection.read([requests[i] for i in waiting], timeout)
        for i, answer in zip(waiting, answers, strict=False):
            results[i].answer = answer
        self._release(connection)
        pipe.waiting = waiting = waiting[len(answers) :]
        if not waiting:
            return False
        if stop is not None and not isinstance(stop, _Cut):
            _fail(results, waiting, _transport_error(stop, requests[waiting[0]]))
            return False
        if not answers and not connection.reused:
            _fail(results, waiting, _unanswered(requests[waiting[0]]))
            return False
        # Ended before the rest were answered: they go out again, on a fresh connection when
        # this one answered nothing (a reused one, closed idle by the server).
        pipe.fresh_only = not answers
        for i in waiting:
            results[i].resent = True
        return True

    def _release(self, connection: _Connection) -> None:
        """Back to the idle list when it may carry more, else closed."""
        if connection.kept:
            connection.reused = True
            with self._lock:
                if len(self._idle) < MAX_IDLE:
                    self._idle.append(connection)
                    return
        connection.close()

    def _exchange(
        self, connection: _Connection, request: httpx.Request, timeout: dict[str, float | None]
    ) -> Answer:
        try:
            answer = connection.exchange(request, timeout)
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
        self._release(connection)
        return answer

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


@dataclass(slots=True)
class _Pipe:
    """The requests (by index) one connection carries in a round of ``SyncLane.pipeline``."""

    waiting: list[int]
    fresh_only: bool = False
    connection: _Connection | None = None
    stop: Exception | None = None  # why the write failed


def _groups(wires: Sequence[bytes]) -> list[list[int]]:
    """The indices of ``wires`` cut into pipelines (see ``SyncLane.pipeline``), in order."""
    per = -(-len(wires) // min(PIPELINES, -(-len(wires) // PIPELINE_DEPTH)))
    groups: list[list[int]] = []
    group: list[int] = []
    size = 0
    for i, wire in enumerate(wires):
        if group and (len(group) == per or size + len(wire) > PIPELINE_BYTES):
            groups.append(group)
            group, size = [], 0
        group.append(i)
        size += len(wire)
    groups.append(group)
    return groups


def _fail(results: list[Sent], indices: Sequence[int], error: httpx.TransportError) -> None:
    for i in indices:
        results[i].error = error


def _unanswered(request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(
        "the server closed the connection without answering", request=request
    )


def _transport_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """A failure of a pipelined exchange as the httpx error ``handle_request`` raises for it."""
    if isinstance(exc, httpx.TransportError):
        return exc
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout("timed out waiting for the answer", request=request)
    if isinstance(exc, ProtocolError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    return httpx.ReadError(f"the connection failed: {type(exc).__name__}", request=request)


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
