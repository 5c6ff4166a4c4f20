"""``VaultLane``, the light transport of ``AlterVault``'s vault calls, against a real loopback
server written here on asyncio streams: keep-alive reuse, a connection the server closed,
chunked answers, and failures as httpx's exceptions (so as the SDK's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import vaultgate
from vaultgate._lane import REPLAY_EXTENSION, Lanes, VaultLane

Answer = Callable[[bytes], bytes | None]  # request head+body -> raw answer (None: never answer)


def ok(body: bytes = b'{"ok":true}', *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


@dataclass
class Server:
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def serve(answer: Answer) -> AsyncIterator[Server]:
    state = Server()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                state.requests.append(head + body)
                raw = answer(head + body)
                if raw is None:
                    await asyncio.Event().wait()  # never answers
                if raw == b"":
                    break  # closes without answering
                writer.write(raw)
                await writer.drain()
                if b"Connection: close" in raw:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


def post(port: int, body: bytes = b"{}", timeout: float = 5.0) -> httpx.Request:
    request = httpx.Request("POST", f"http://127.0.0.1:{port}/sdk/x", content=body)
    request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
    return request


async def test_requests_share_one_kept_alive_connection() -> None:
    async with serve(lambda _: ok()) as server:
        lane = VaultLane(f"http://127.0.0.1:{server.port}")
        for _ in range(3):
            response = await lane.handle_async_request(post(server.port, b'{"a":1}'))
            assert (response.status_code, response.json()) == (200, {"ok": True})
        await lane.aclose()
    assert server.connections == 1 and len(server.requests) == 3
    assert all(r.endswith(b'\r\n\r\n{"a":1}') for r in server.requests)


async def test_a_connection_the_server_closed_is_replaced() -> None:
    async with serve(lambda _: ok(close=True)) as server:
        lane = VaultLane(f"http://127.0.0.1:{server.port}")
        for _ in range(2):
            assert (await lane.handle_async_request(post(server.port))).status_code == 200
        await lane.aclose()
    assert server.connections == 2


async def test_a_chunked_answer_is_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nX-Request-Id: r1\r\n\r\n"
        b'5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
    )
    async with serve(lambda _: chunked) as server:
        lane = VaultLane(f"http://127.0.0.1:{server.port}")
        response = await lane.handle_async_request(post(server.port))
        await lane.aclose()
    assert response.status_code == 404 and response.json() == {"a": 1}
    assert response.headers["x-request-id"] == "r1"


async def test_a_vault_that_never_answers_is_a_read_timeout() -> None:
    async with serve(lambda _: None) as server:
        lane = VaultLane(f"http://127.0.0.1:{server.port}")
        with pytest.raises(httpx.ReadTimeout):
            await lane.handle_async_request(post(server.port, timeout=0.3))
        await lane.aclose()


async def test_nothing_listening_is_a_connect_error_and_the_sdks_network_error() -> None:
    async with serve(lambda _: ok()) as server:
        port = server.port
    lane = VaultLane(f"http://127.0.0.1:{port}")
    with pytest.raises(httpx.ConnectError):
        await lane.handle_async_request(post(port))
    key = "alter_key_" + "k" * 40
    async with vaultgate.AlterVault(api_key=key, base_url=f"http://127.0.0.1:{port}") as vault:
        with pytest.raises(vaultgate.NetworkError) as raised:
            await vault.list_grants()
    assert key not in repr(raised.value) and key not in str(raised.value)


async def test_the_sdk_sends_its_signed_calls_through_the_lane() -> None:
    page = b'{"grants":[],"total":0,"limit":5,"offset":0,"has_more":false}'
    async with serve(lambda _: ok(page)) as server:
        url = f"http://127.0.0.1:{server.port}"
        async with vaultgate.AlterVault(api_key="alter_key_" + "k" * 40, base_url=url) as vault:
            first = await vault.list_grants(limit=5)
            await vault.list_grants(limit=5)
    assert first.total == 0 and server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].lower()
    assert b"x-alter-signature:" in head and b"x-api-key:" in head
    assert server.requests[0].endswith(b'{"limit":5,"offset":0}')


def second_dropped() -> Answer:
    """The race with the server's idle close: the second request meets a closed connection."""
    count = iter(range(1_000))
    return lambda _: b"" if next(count) == 1 else ok()


async def test_a_stale_connection_replays_a_rebuilt_request_once_and_nothing_else() -> None:
    """As in the sync lane (see test_synclane): a request that carries a way to rebuild it
    (a re-signed token fetch) is sent once more on a new connection; one without is not."""
    async with serve(second_dropped()) as server:
        lane = VaultLane(f"http://127.0.0.1:{server.port}")
        await lane.handle_async_request(post(server.port))
        request = post(server.port, b'{"n":"first"}')
        request.extensions[REPLAY_EXTENSION] = lambda: post(server.port, b'{"n":"fresh"}')
        response = await lane.handle_async_request(request)
        assert response.request.content == b'{"n":"fresh"}'
        await lane.aclose()
    assert server.connections == 2 and len(server.requests) == 3
    async with serve(second_dropped()) as server:
        lane = VaultLane(f"http://127.0.0.1:{server.port}")
        await lane.handle_async_request(post(server.port))
        with pytest.raises(httpx.RemoteProtocolError):
            await lane.handle_async_request(post(server.port, b'{"report":1}'))
        await lane.aclose()
    assert len(server.requests) == 2


async def test_a_provider_get_on_a_stale_connection_is_replayed_and_a_post_is_not() -> None:
    async with serve(second_dropped()) as server:
        lanes = Lanes()
        url = f"http://127.0.0.1:{server.port}/v1/things"
        timeout = {"timeout": httpx.Timeout(5.0).as_dict()}
        await lanes.handle_async_request(httpx.Request("GET", url, extensions=timeout))
        again = await lanes.handle_async_request(httpx.Request("GET", url, extensions=timeout))
        assert again.status_code == 200 and len(server.requests) == 3
        await lanes.aclose()
    async with serve(second_dropped()) as server:
        lanes = Lanes()
        url = f"http://127.0.0.1:{server.port}/v1/things"
        await lanes.handle_async_request(httpx.Request("POST", url, extensions=timeout))
        with pytest.raises(httpx.RemoteProtocolError):
            await lanes.handle_async_request(httpx.Request("POST", url, extensions=timeout))
        await lanes.aclose()
    assert len(server.requests) == 2


async def test_a_call_cancelled_mid_exchange_closes_its_connection() -> None:
    """``await_approval`` gives up on a held poll by cancelling it: the connection must be
    closed then, not left to the garbage collector (a ResourceWarning, an fd held meanwhile)."""
    async with serve(lambda _: None) as server:
        lane = VaultLane(f"http://127.0.0.1:{server.port}")
        opened: list[Any] = []
        open_connection = lane._open

        async def recording(*args: Any) -> Any:
            opened.append(await open_connection(*args))
            return opened[-1]

        lane._open = recording  # type: ignore[method-assign]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(lane.handle_async_request(post(server.port)), 0.2)
        [connection] = opened
        assert connection.writer.is_closing() and lane._idle == []
        await lane.aclose()
