"""``SyncLane``, ``SyncVault``'s light transport, against a real loopback server written here on
blocking sockets: keep-alive reuse, connections the server closes (idle, or in the race with a
request), which requests are sent again and which never are, framing, and failures as httpx's
exceptions and so as the SDK's own errors."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

import vaultgate
from vaultgate._http11 import request_bytes
from vaultgate._lane import REPLAY_EXTENSION
from vaultgate._synclane import (
    PIPELINE_BYTES,
    PIPELINE_DEPTH,
    PIPELINES,
    Sent,
    SyncLane,
    SyncLanes,
)

WAIT = 20.0  # generous: the machine is shared; nothing here measures time
KEY = "alter_key_" + "k" * 40
HANG = b"<hang>"  # answer nothing and keep the connection open
DROP = b"<drop>"  # close the connection without answering
CUT = b"<cut>"  # send what follows, then close the connection

# (index of the connection, index of the request on it, raw request) -> raw answer
Answer = Callable[[int, int, bytes], bytes]


def ok(body: bytes = b'{"ok":true}', *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


@dataclass
class Server:
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Close every connection after its answer without saying so (an idle timeout of zero).
    close_after_answer: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _read_request(conn: socket.socket, buf: bytearray) -> bytes | None:
    """One request; ``buf`` keeps what followed it (pipelined requests, read ahead)."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    cut = buf.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buf[:cut]).split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(buf) < cut + length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    raw = bytes(buf[: cut + length])
    del buf[: cut + length]
    return raw


@contextmanager
def serve(answer: Answer, *, close_after_answer: bool = False, gather: int = 1) -> Iterator[Server]:
    """``gather``: read that many requests of a connection before answering the first (a
    client that waits for each answer before its next request then never gets one)."""
    state = Server(close_after_answer=close_after_answer)
    listener = socket.create_server(("127.0.0.1", 0))
    state.port = listener.getsockname()[1]
    stop = threading.Event()

    def handle(conn: socket.socket, index: int) -> None:
        # A client that resets the connection ends it, as it would end a real server's; the
        # tests judge what the client got, not this thread.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            _handle(conn, index)

    def _handle(conn: socket.socket, index: int) -> None:
        with conn:
            n = 0
            buf = bytearray()
            gathered: list[bytes] = []
            while True:
                while len(gathered) < (gather if n == 0 else 1):
                    if (read := _read_request(conn, buf)) is None:
                        return
                    gathered.append(read)
                    with state.lock:
                        state.requests.append(read)
                raw = gathered.pop(0)
                reply = answer(index, n, raw)
                n += 1
                if reply == DROP:
                    return
                if reply == HANG:
                    stop.wait(WAIT)
                    return
                if reply.startswith(CUT):
                    conn.sendall(reply.removeprefix(CUT))
                    return
                conn.sendall(reply)
                if state.close_after_answer:
                    return
                if b"Connection: close" in reply:
                    # A lingering close, as servers do: closed with unread requests pending, the
                    # socket would reset the connection, and the client could lose this answer.
                    conn.shutdown(socket.SHUT_WR)
                    while conn.recv(65536):
                        pass
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with state.lock:
                index = state.connections
                state.connections += 1
            threading.Thread(target=handle, args=(conn, index), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() does not
        listener.close()
        thread.join(WAIT)


def post(url: str, body: bytes = b"{}", *, timeout: float = WAIT) -> httpx.Request:
    request = httpx.Request("POST", url + "/sdk/x", content=body)
    request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
    return request


def get(url: str) -> httpx.Request:
    request = httpx.Request("GET", url + "/v1/things")
    request.extensions["timeout"] = httpx.Timeout(WAIT).as_dict()
    return request


def test_requests_share_one_kept_alive_connection() -> None:
    with serve(lambda *_: ok()) as server:
        lane = SyncLane(server.url)
        for _ in range(3):
            response = lane.handle_request(post(server.url, b'{"a":1}'))
            assert (response.status_code, response.json()) == (200, {"ok": True})
        lane.close()
    assert server.connections == 1 and len(server.requests) == 3
    assert all(r.endswith(b'\r\n\r\n{"a":1}') for r in server.requests)


def test_connection_close_is_honoured_and_the_next_call_opens_a_new_one() -> None:
    with serve(lambda *_: ok(close=True)) as server:
        lane = SyncLane(server.url)
        for _ in range(2):
            assert lane.handle_request(post(server.url)).status_code == 200
        lane.close()
    assert server.connections == 2 and len(server.requests) == 2


def test_an_idle_connection_the_server_closed_is_dropped_before_use() -> None:
    """The server closes after each answer without a word (its idle timeout): the check
    before reuse sees it, so even a POST that must never be sent twice goes out once."""
    with serve(lambda *_: ok(), close_after_answer=True) as server:
        lane = SyncLane(server.url)
        first = lane.handle_request(post(server.url))
        # Wait until the server's close has reached this side.
        [idle] = lane._idle
        idle.sock.settimeout(WAIT)
        assert idle.sock.recv(1, socket.MSG_PEEK) == b""
        second = lane.handle_request(post(server.url))
        lane.close()
    assert first.status_code == second.status_code == 200
    assert server.connections == 2 and len(server.requests) == 2


def dropped_on_reuse(connection: int, request: int, raw: bytes) -> bytes:
    """The race: the second request on the first connection meets a server that closed."""
    return DROP if (connection, request) == (0, 1) else ok()


def test_a_replayable_request_on_a_stale_connection_is_rebuilt_and_sent_once_more() -> None:
    with serve(dropped_on_reuse) as server:
        lane = SyncLane(server.url)
        lane.handle_request(post(server.url))
        built: list[int] = []

        def rebuild() -> httpx.Request:
            built.append(1)
            return post(server.url, b'{"nonce":"fresh"}')

        request = post(server.url, b'{"nonce":"first"}')
        request.extensions[REPLAY_EXTENSION] = rebuild
        response = lane.handle_request(request)
        lane.close()
    assert response.status_code == 200 and built == [1]
    assert response.request.content == b'{"nonce":"fresh"}'
    assert server.connections == 2
    assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in server.requests] == [
        b"{}",
        b'{"nonce":"first"}',
        b'{"nonce":"fresh"}',
    ]


def test_a_request_without_a_replay_is_never_sent_twice() -> None:
    with serve(dropped_on_reuse) as server:
        lane = SyncLane(server.url)
        lane.handle_request(post(server.url))
        with pytest.raises(httpx.RemoteProtocolError):
            lane.handle_request(post(server.url, b'{"report":1}'))
        lane.close()
    assert len(server.requests) == 2 and server.connections == 1


def test_a_fresh_connection_closed_without_an_answer_is_not_replayed() -> None:
    """Only a reused connection can be stale; on a new one the server chose not to answer."""
    with serve(lambda *_: DROP) as server:
        lane = SyncLane(server.url)
        request = post(server.url)
        request.extensions[REPLAY_EXTENSION] = lambda: post(server.url)
        with pytest.raises(httpx.RemoteProtocolError):
            lane.handle_request(request)
        lane.close()
    assert len(server.requests) == 1


def test_a_provider_get_is_replayed_and_a_provider_post_is_not() -> None:
    with serve(lambda c, n, raw: DROP if n == 1 else ok()) as server:
        lanes = SyncLanes()
        lanes.handle_request(get(server.url))
        assert lanes.handle_request(get(server.url)).status_code == 200  # replayed
        assert len(server.requests) == 3
        with pytest.raises(httpx.RemoteProtocolError):
            lanes.handle_request(post(server.url))  # second on the new connection: dropped
        lanes.close()
    assert len(server.requests) == 4


def test_an_answer_cut_after_its_first_bytes_is_an_error_and_not_replayed() -> None:
    cut = CUT + b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"partial"'
    with serve(lambda c, n, raw: cut if n == 1 else ok()) as server:
        lane = SyncLane(server.url, idempotent_replay=True)
        lane.handle_request(get(server.url))
        with pytest.raises(httpx.RemoteProtocolError):
            lane.handle_request(get(server.url))  # a GET, but an answer had begun
        lane.close()
    assert len(server.requests) == 2


def test_a_chunked_answer_is_read_whole_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nX-Request-Id: r1\r\n\r\n"
        b'5\r\n{"a":\r\n3;ext=1\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    with serve(lambda *_: chunked) as server:
        lane = SyncLane(server.url)
        for _ in range(2):
            response = lane.handle_request(post(server.url))
            assert response.status_code == 404 and response.json() == {"a": 1}
            assert response.headers["x-request-id"] == "r1"
        lane.close()
    assert server.connections == 1


def test_an_interim_100_is_skipped() -> None:
    with serve(lambda *_: b"HTTP/1.1 100 Continue\r\n\r\n" + ok()) as server:
        lane = SyncLane(server.url)
        assert lane.handle_request(post(server.url)).json() == {"ok": True}
        lane.close()


def test_a_malformed_answer_is_a_protocol_error() -> None:
    with serve(lambda *_: b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n") as server:
        lane = SyncLane(server.url)
        with pytest.raises(httpx.RemoteProtocolError):
            lane.handle_request(post(server.url))
        lane.close()


def test_a_vault_that_never_answers_is_a_read_timeout_and_the_sdks_timeout_error() -> None:
    with serve(lambda *_: HANG) as server:
        lane = SyncLane(server.url)
        with pytest.raises(httpx.ReadTimeout):
            lane.handle_request(post(server.url, timeout=0.3))
        lane.close()
        vault = vaultgate.SyncVault(api_key=KEY, base_url=server.url, timeout=0.3)
        with vault, pytest.raises(vaultgate.TimeoutError) as raised:
            vault.list_grants()
    assert str(raised.value) == "could not reach the vault: ReadTimeout"


def test_nothing_listening_is_a_connect_error_and_the_sdks_network_error() -> None:
    with serve(lambda *_: ok()) as server:
        url = server.url
    lane = SyncLane(url)
    with pytest.raises(httpx.ConnectError):
        lane.handle_request(post(url))
    vault = vaultgate.SyncVault(api_key=KEY, base_url=url)
    with vault, pytest.raises(vaultgate.NetworkError) as raised:
        vault.list_grants()
    assert str(raised.value) == "could not reach the vault: ConnectError"
    assert KEY not in repr(raised.value)


def test_the_sdk_sends_its_signed_calls_through_the_lane() -> None:
    page = b'{"grants":[],"total":0,"limit":5,"offset":0,"has_more":false}'
    with (
        serve(lambda *_: ok(page)) as server,
        vaultgate.SyncVault(KEY, base_url=server.url) as vault,
    ):
        first = vault.list_grants(limit=5)
        vault.list_grants(limit=5)
    assert first.total == 0 and server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].lower()
    assert b"x-alter-signature:" in head and b"x-api-key:" in head


def test_only_token_fetches_and_read_only_verbs_carry_a_replay() -> None:
    """The rule of _lane's docstring, where the requests are built: a token fetch is re-signed
    (fresh nonce); reports, proxy calls and mutating verbs are never sent twice."""
    vault = vaultgate.SyncVault(api_key=KEY, base_url="http://127.0.0.1:9", env={})
    client = vault._vault
    token = vault._vault_request(client, "/sdk/token", {"grant_id": "g"})
    again = token.extensions[REPLAY_EXTENSION]()
    assert again.headers["x-alter-nonce"] != token.headers["x-alter-nonce"]
    assert again.content == token.content
    listing = vault._vault_request(client, "/sdk/grants", None, method="GET")
    assert REPLAY_EXTENSION in listing.extensions
    for path in ("/sdk/oauth/audit/api-call", "/sdk/proxy", "/sdk/grants/mint"):
        assert REPLAY_EXTENSION not in vault._vault_request(client, path, {}).extensions
    vault.close()


# -- pipelining: several requests written at once, the answers read in order --------------------


def numbered(count: int) -> list[httpx.Request]:
    return [post("", b'{"n":%d}' % n) for n in range(count)]


def echo(connection: int, request: int, raw: bytes) -> bytes:
    """Answer with the request's own body, so each answer shows whose it is."""
    return ok(raw.rsplit(b"\r\n\r\n", 1)[1])


def bodies(sent: list[Sent]) -> list[bytes | None]:
    return [s.answer.body if s.answer else None for s in sent]


def on(server: Server, requests: list[httpx.Request]) -> list[httpx.Request]:
    for request in requests:
        request.url = httpx.URL(server.url + "/sdk/x")
        request.headers["Host"] = f"127.0.0.1:{server.port}"
    return requests


def test_pipelined_requests_go_out_together_and_their_answers_come_back_in_order() -> None:
    # The server reads all of a connection's requests before it answers the first: a lane that
    # waited for each answer before writing the next request would never get one.
    with serve(echo, gather=PIPELINE_DEPTH) as server:
        lane = SyncLane(server.url)
        sent = lane.pipeline(on(server, numbered(PIPELINE_DEPTH)))
        again = lane.pipeline(on(server, numbered(1)))  # the same connection, kept
        lane.close()
    assert bodies(sent) == [b'{"n":%d}' % n for n in range(PIPELINE_DEPTH)]
    assert bodies(again) == [b'{"n":0}']
    assert not any(s.resent or s.error for s in sent + again)
    assert server.connections == 1


def test_a_large_batch_is_spread_over_connections_all_written_before_any_answer_is_read() -> None:
    count = PIPELINES * PIPELINE_DEPTH
    with serve(echo, gather=PIPELINE_DEPTH) as server:
        lane = SyncLane(server.url)
        sent = lane.pipeline(on(server, numbered(count)))
        lane.close()
    assert bodies(sent) == [b'{"n":%d}' % n for n in range(count)]
    assert server.connections == PIPELINES


def test_no_write_carries_more_than_the_pipeline_bytes_and_every_request_is_answered() -> None:
    big = b'{"pad":"%s"}' % (b"x" * (PIPELINE_BYTES // 2))
    with serve(echo) as server:
        lane = SyncLane(server.url)
        sent = lane.pipeline(on(server, [post("", big) for _ in range(3)]))
        lane.close()
    assert bodies(sent) == [big] * 3
    assert server.connections == 3  # two would not fit in one write


def test_a_server_ending_the_connection_mid_pipeline_gets_only_the_unanswered_again() -> None:
    """An answer with ``Connection: close`` after two: the others go out again, the same
    bytes (one signature, one nonce) on a new connection, and are flagged as resent."""

    def close_second(connection: int, request: int, raw: bytes) -> bytes:
        body = raw.rsplit(b"\r\n\r\n", 1)[1]
        return ok(body, close=(connection, request) == (0, 1))

    with serve(close_second) as server:
        lane = SyncLane(server.url)
        requests = on(server, numbered(PIPELINE_DEPTH))
        sent = lane.pipeline(requests)
        lane.close()
    assert bodies(sent) == [b'{"n":%d}' % n for n in range(PIPELINE_DEPTH)]
    assert [s.resent for s in sent] == [False, False] + [True] * (PIPELINE_DEPTH - 2)
    assert server.connections == 2
    wires = [request_bytes("POST", r.url.raw_path, r.headers.raw, r.content) for r in requests]
    assert server.requests == wires  # each exactly once: the server read two, then the rest


def test_a_pipeline_cut_without_warning_resends_what_was_not_answered() -> None:
    """The server answers the first request, then closes while holding the second (its
    unread requests may reset the connection, and the first answer can be lost with it):
    whatever had no answer goes out again, flagged, and at most twice."""

    def drop_second(connection: int, request: int, raw: bytes) -> bytes:
        return DROP if (connection, request) == (0, 1) else echo(connection, request, raw)

    with serve(drop_second) as server:
        lane = SyncLane(server.url)
        requests = on(server, numbered(PIPELINE_DEPTH))
        sent = lane.pipeline(requests)
        lane.close()
    assert bodies(sent) == [b'{"n":%d}' % n for n in range(PIPELINE_DEPTH)]
    assert all(s.resent for s in sent[1:])
    seen = [raw.rsplit(b"\r\n\r\n", 1)[1] for raw in server.requests]
    for request, fate in zip(requests, sent, strict=True):
        assert 1 <= seen.count(request.content) <= (2 if fate.resent else 1)
    assert server.connections == 2


def test_a_reused_connection_found_closed_sends_the_whole_pipeline_on_a_fresh_one() -> None:
    def drop_on_reuse(connection: int, request: int, raw: bytes) -> bytes:
        return DROP if (connection, request) == (0, 1) else echo(connection, request, raw)

    with serve(drop_on_reuse) as server:
        lane = SyncLane(server.url)
        lane.handle_request(post(server.url))
        sent = lane.pipeline(on(server, numbered(3)))
        lane.close()
    assert bodies(sent) == [b'{"n":%d}' % n for n in range(3)]
    assert all(s.resent for s in sent)
    assert server.connections == 2


def test_a_fresh_connection_closed_unanswered_fails_the_pipeline_and_sends_nothing_again() -> None:
    with serve(lambda *_: DROP) as server:
        lane = SyncLane(server.url)
        sent = lane.pipeline(on(server, numbered(3)))
        lane.close()
    assert all(isinstance(s.error, httpx.RemoteProtocolError) for s in sent)
    assert not any(s.answer or s.resent for s in sent)
    assert server.connections == 1 and len(server.requests) == 1


def test_a_timeout_or_a_malformed_answer_is_not_retried() -> None:
    with serve(lambda c, n, raw: HANG if n == 1 else ok()) as server:
        lane = SyncLane(server.url)
        requests = on(server, [post("", timeout=0.5) for _ in range(3)])
        hung = lane.pipeline(requests)
        lane.close()
    assert hung[0].answer is not None and hung[0].answer.status == 200
    assert all(isinstance(s.error, httpx.ReadTimeout) for s in hung[1:])
    assert server.connections == 1 and len(server.requests) == 2
    with serve(lambda c, n, raw: b"NOT HTTP\r\n\r\n" if n == 1 else ok()) as server:
        lane = SyncLane(server.url)
        bad = lane.pipeline(on(server, numbered(3)))
        lane.close()
    assert bad[0].answer is not None
    assert all(isinstance(s.error, httpx.RemoteProtocolError) for s in bad[1:])
    assert server.connections == 1


def test_nothing_listening_fails_every_pipelined_request_with_a_connect_error() -> None:
    with serve(lambda *_: ok()) as server:
        url = server.url
    sent = SyncLane(url).pipeline([post(url) for _ in range(2)])
    assert all(isinstance(s.error, httpx.ConnectError) for s in sent)
