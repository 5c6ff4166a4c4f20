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
from vaultgate._lane import REPLAY_EXTENSION
from vaultgate._synclane import SyncLane, SyncLanes

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


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


@contextmanager
def serve(answer: Answer, *, close_after_answer: bool = False) -> Iterator[Server]:
    state = Server(close_after_answer=close_after_answer)
    listener = socket.create_server(("127.0.0.1", 0))
    state.port = listener.getsockname()[1]
    stop = threading.Event()

    def handle(conn: socket.socket, index: int) -> None:
        with conn:
            n = 0
            while (raw := _read_request(conn)) is not None:
                with state.lock:
                    state.requests.append(raw)
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
                if state.close_after_answer or b"Connection: close" in reply:
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
