from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from vaultgate.server.egress import (
    AddressGuard,
    UpstreamClient,
    UpstreamTimeouts,
    capped,
    parse_target,
    strip_hop_by_hop,
)
from vaultgate.server.errors import (
    BadGateway,
    GatewayTimeout,
    InvalidInput,
    MethodNotAllowed,
    PayloadTooLarge,
    Unprocessable,
)

from .conftest import Server

TIMEOUTS = UpstreamTimeouts(connect=5, read=10, first_byte=10)
# Both phases tiny: the header wait is limited by first_byte, the body's gaps by read.
TINY = UpstreamTimeouts(connect=5, read=0.05, first_byte=0.05)
SECRET = "sk-live-do-not-print-me"

RawServer = Callable[[bytes], Awaitable[int]]


def _names(headers: list[tuple[str, str]]) -> set[str]:
    return {name.lower() for name, _ in headers}


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_forwards_method_path_query_headers_and_body(
    client: UpstreamClient, upstream: Server
) -> None:
    target = upstream.target("/v1/items?limit=2&x=%20")
    headers = [("Authorization", f"Bearer {SECRET}"), ("X-Multi", "a"), ("X-Multi", "b")]
    async with await client.send("POST", target, headers, b'{"a":1}', timeout=TIMEOUTS) as response:
        assert response.status == 200
        assert json.loads(await response.read(1024)) == {"ok": True}
    [seen] = upstream.requests
    assert (seen.method, seen.path_qs, seen.body) == ("POST", "/v1/items?limit=2&x=%20", b'{"a":1}')
    assert ("Authorization", f"Bearer {SECRET}") in seen.headers
    assert [v for n, v in seen.headers if n == "X-Multi"] == ["a", "b"]
    assert ("Host", f"upstream.test:{upstream.port}") in seen.headers
    assert ("Content-Length", "7") in seen.headers


async def test_adds_no_headers_of_its_own(client: UpstreamClient, upstream: Server) -> None:
    response = await client.send("GET", upstream.target("/"), [], timeout=TIMEOUTS)
    response.close()
    [seen] = upstream.requests
    assert _names(seen.headers).isdisjoint({"user-agent", "accept-encoding", "accept", "cookie"})


async def test_a_redirect_is_returned_not_followed(
    client: UpstreamClient, upstream: Server, evil: Server
) -> None:
    async with await client.send(
        "GET", upstream.target("/redirect"), [("Authorization", SECRET)], timeout=TIMEOUTS
    ) as response:
        assert response.status == 302
        assert ("Location", f"http://evil.test:{evil.port}/steal") in response.headers
    assert len(upstream.requests) == 1
    assert evil.requests == []


async def test_the_evil_server_is_reachable_so_the_redirect_test_means_something(
    client: UpstreamClient, evil: Server
) -> None:
    response = await client.send("GET", evil.target("/x", host="evil.test"), [], timeout=TIMEOUTS)
    response.close()
    assert len(evil.requests) == 1


async def test_cookies_are_not_kept_between_requests(
    client: UpstreamClient, upstream: Server
) -> None:
    for _ in range(2):
        async with await client.send("GET", upstream.target("/"), [], timeout=TIMEOUTS) as response:
            assert any(name == "Set-Cookie" for name, _ in response.headers)
            await response.read(1024)
    assert all("cookie" not in _names(seen.headers) for seen in upstream.requests)


async def test_a_name_resolving_to_loopback_is_refused_by_default(
    strict_client: UpstreamClient, upstream: Server
) -> None:
    with pytest.raises(Unprocessable) as caught:
        await strict_client.send("GET", upstream.target("/"), [], timeout=TIMEOUTS)
    assert caught.value.code == "blocked_destination"
    assert upstream.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f.1", "0177.0.0.1", "127.1"])
async def test_an_ip_literal_to_loopback_is_refused_by_default(
    strict_client: UpstreamClient, upstream: Server, host: str
) -> None:
    target = parse_target(f"http://{host}:{upstream.port}/")
    with pytest.raises(Unprocessable):
        await strict_client.send("GET", target, [], timeout=TIMEOUTS)
    assert upstream.requests == []


async def test_an_ip_literal_inside_allowed_private_is_reached(
    client: UpstreamClient, upstream: Server
) -> None:
    target = parse_target(f"http://0x7f.1:{upstream.port}/ip")
    (await client.send("GET", target, [], timeout=TIMEOUTS)).close()
    assert [seen.path_qs for seen in upstream.requests] == ["/ip"]


async def test_sse_events_arrive_as_they_are_sent(client: UpstreamClient, upstream: Server) -> None:
    response = await client.send("GET", upstream.target("/sse"), [], timeout=TIMEOUTS)
    try:
        chunks = response.iter_chunks()
        received = b""
        async with asyncio.timeout(10):  # a safety net against a hang, not a measurement
            while b"\n\n" not in received:
                received += await anext(chunks)
        # The server is still parked before its last event: this chunk came while it waited.
        assert b"event: one" in received
        assert not upstream.second_sent.is_set()
        upstream.release.set()
        rest = b"".join([chunk async for chunk in chunks])
        assert b"event: two" in rest
    finally:
        response.close()


async def test_request_body_over_the_cap_is_413(client: UpstreamClient, upstream: Server) -> None:
    body = capped(_chunks(*[b"x" * 1000] * 10), limit=4096)
    with pytest.raises(PayloadTooLarge) as caught:
        await client.send("POST", upstream.target("/upload"), [], body, timeout=TIMEOUTS)
    assert caught.value.status == 413
    assert upstream.requests == []


async def test_a_streamed_body_under_the_cap_is_sent_chunked(
    client: UpstreamClient, upstream: Server
) -> None:
    body = capped(_chunks(b"a" * 100, b"b" * 100), limit=4096)
    (await client.send("PUT", upstream.target("/upload"), [], body, timeout=TIMEOUTS)).close()
    [seen] = upstream.requests
    assert seen.body == b"a" * 100 + b"b" * 100
    assert ("Transfer-Encoding", "chunked") in seen.headers


async def test_a_streamed_body_keeps_its_declared_length(
    client: UpstreamClient, upstream: Server
) -> None:
    headers = [("Content-Length", "6")]
    body = _chunks(b"abc", b"def")
    (await client.send("PUT", upstream.target("/u"), headers, body, timeout=TIMEOUTS)).close()
    [seen] = upstream.requests
    assert seen.body == b"abcdef"
    assert ("Content-Length", "6") in seen.headers
    assert "transfer-encoding" not in _names(seen.headers)


@pytest.mark.parametrize("length", ["5", "7", "abc", "-1"])
async def test_a_streamed_body_that_breaks_its_length_is_refused(
    client: UpstreamClient, upstream: Server, length: str
) -> None:
    with pytest.raises(InvalidInput):
        await client.send(
            "PUT",
            upstream.target("/u"),
            [("Content-Length", length)],
            _chunks(b"abc", b"def"),
            timeout=TIMEOUTS,
        )
    assert upstream.requests == []


async def test_a_fixed_body_ignores_a_lying_content_length(
    client: UpstreamClient, upstream: Server
) -> None:
    headers = [("Content-Length", "2")]
    (await client.send("POST", upstream.target("/u"), headers, b"abcdef", timeout=TIMEOUTS)).close()
    [seen] = upstream.requests
    assert seen.body == b"abcdef"
    assert [v for n, v in seen.headers if n == "Content-Length"] == ["6"]


async def test_a_large_fixed_body_goes_out_with_its_own_length(
    client: UpstreamClient, upstream: Server
) -> None:
    """Past 1 MiB it is sent in slices (aiohttp warns on one that large given whole, and the
    warnings are errors here), under the same framing as a small one."""
    body = bytes(range(256)) * (9 << 12)  # 9 MiB, every slice different
    headers = [("Content-Length", "2")]
    (await client.send("POST", upstream.target("/u"), headers, body, timeout=TIMEOUTS)).close()
    [seen] = upstream.requests
    assert seen.body == body
    assert [v for n, v in seen.headers if n.lower() == "content-length"] == [str(len(body))]
    assert "transfer-encoding" not in _names(seen.headers)


async def test_hop_by_hop_request_headers_are_dropped(
    client: UpstreamClient, upstream: Server
) -> None:
    headers = [
        ("Connection", "keep-alive, X-Drop-Me"),
        ("X-Drop-Me", "1"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-T"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic abc"),
        ("Proxy-Connection", "keep-alive"),
        ("Transfer-Encoding", "chunked"),
        ("Host", "evil.test"),
        ("X-Keep", "yes"),
    ]
    (await client.send("POST", upstream.target("/h"), headers, b"body", timeout=TIMEOUTS)).close()
    [seen] = upstream.requests
    names = _names(seen.headers)
    assert "x-keep" in names
    dropped = {"x-drop-me", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization"}
    assert names.isdisjoint(dropped | {"proxy-connection", "transfer-encoding"})
    assert [v for n, v in seen.headers if n == "Host"] == [f"upstream.test:{upstream.port}"]
    assert seen.body == b"body"


async def test_hop_by_hop_response_headers_are_dropped(
    client: UpstreamClient, raw_server: RawServer
) -> None:
    port = await raw_server(
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Length: 2\r\n"
        b"Connection: keep-alive, X-Hop\r\n"
        b"X-Hop: internal\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"Proxy-Authenticate: Basic\r\n"
        b"Set-Cookie: a=1\r\n"
        b"Set-Cookie: b=2\r\n"
        b"X-End: 1\r\n\r\nok"
    )
    target = parse_target(f"http://upstream.test:{port}/")
    async with await client.send("GET", target, [], timeout=TIMEOUTS) as response:
        assert response.headers == [
            ("Content-Length", "2"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-End", "1"),
        ]
        assert await response.read(10) == b"ok"


async def test_a_chunked_response_loses_transfer_encoding_but_keeps_its_body(
    client: UpstreamClient, raw_server: RawServer
) -> None:
    port = await raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    target = parse_target(f"http://upstream.test:{port}/")
    async with await client.send("GET", target, [], timeout=TIMEOUTS) as response:
        assert _names(response.headers).isdisjoint({"transfer-encoding", "content-length"})
        assert await response.read(10) == b"abcde"


async def test_a_compressed_body_passes_through_untouched(
    client: UpstreamClient, upstream: Server
) -> None:
    headers = [("Accept-Encoding", "gzip")]
    async with await client.send(
        "GET", upstream.target("/gzip"), headers, timeout=TIMEOUTS
    ) as response:
        body = await response.read(1024)
        assert ("Content-Encoding", "gzip") in response.headers
        assert ("Content-Length", str(len(body))) in response.headers
    assert gzip.decompress(body) == b"hello"


async def test_read_past_its_limit_is_payload_too_large(
    client: UpstreamClient, upstream: Server
) -> None:
    async with await client.send("GET", upstream.target("/big"), [], timeout=TIMEOUTS) as response:
        with pytest.raises(PayloadTooLarge):
            await response.read(1000)
    async with await client.send("GET", upstream.target("/big"), [], timeout=TIMEOUTS) as response:
        assert len(await response.read(10_000)) == 10_000


async def test_a_slow_upstream_is_gateway_timeout(client: UpstreamClient, upstream: Server) -> None:
    target = upstream.target(f"/slow-headers?key={SECRET}")
    with pytest.raises(GatewayTimeout) as caught:
        await client.send("GET", target, [("Authorization", SECRET)], timeout=TINY)
    assert caught.value.status == 504
    assert SECRET not in caught.value.message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_a_body_that_stalls_is_gateway_timeout(
    client: UpstreamClient, upstream: Server
) -> None:
    async with await client.send(
        "GET", upstream.target("/slow-body"), [], timeout=TINY
    ) as response:
        with pytest.raises(GatewayTimeout):
            await response.read(1000)


async def test_a_refused_connection_is_bad_gateway_without_secrets(client: UpstreamClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens
    target = parse_target(f"http://upstream.test:{port}/x?api_key={SECRET}")
    with pytest.raises(BadGateway) as caught:
        await client.send("GET", target, [("Authorization", SECRET)], timeout=TIMEOUTS)
    assert caught.value.code == "upstream_error"
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_an_unresolvable_host_is_bad_gateway(client: UpstreamClient) -> None:
    target = parse_target("http://nowhere.test/")
    with pytest.raises(BadGateway):
        await client.send("GET", target, [], timeout=TIMEOUTS)


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Evil", "a\r\nInjected: yes")],
        [("X-Evil", "a\nb")],
        [("X-Evil", "a\x00")],
        [("Bad Name", "x")],
        [("Bad:Name", "x")],
        [("", "x")],
    ],
)
async def test_header_injection_is_refused(
    client: UpstreamClient, upstream: Server, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await client.send("GET", upstream.target("/"), headers, timeout=TIMEOUTS)
    assert caught.value.code == "invalid_header"
    assert upstream.requests == []


@pytest.mark.parametrize("method", ["CONNECT", "TRACE", "TRACK", "PROPFIND"])
async def test_methods_off_the_allow_list_are_refused(
    client: UpstreamClient, upstream: Server, method: str
) -> None:
    with pytest.raises(MethodNotAllowed):
        await client.send(method, upstream.target("/"), [], timeout=TIMEOUTS)
    assert upstream.requests == []


@pytest.mark.parametrize("method", ["GET /x", "", "G\r\nET"])
async def test_bad_methods_are_refused(
    client: UpstreamClient, upstream: Server, method: str
) -> None:
    with pytest.raises(InvalidInput):
        await client.send(method, upstream.target("/"), [], timeout=TIMEOUTS)
    assert upstream.requests == []


async def test_send_before_start_is_a_programming_error() -> None:
    client = UpstreamClient(AddressGuard())
    with pytest.raises(RuntimeError):
        await client.send("GET", parse_target("https://example.com/"), [], timeout=TIMEOUTS)
    await client.close()  # closing a client never started is harmless


async def test_capped_passes_bodies_within_the_limit() -> None:
    assert [c async for c in capped(_chunks(b"ab", b"cd"), limit=4)] == [b"ab", b"cd"]
    with pytest.raises(PayloadTooLarge):
        [c async for c in capped(_chunks(b"ab", b"cde"), limit=4)]


def test_strip_hop_by_hop_removes_named_and_listed_headers() -> None:
    headers = [
        ("connection", "X-A , x-b"),
        ("X-A", "1"),
        ("x-B", "2"),
        ("TE", "trailers"),
        ("Content-Type", "text/plain"),
    ]
    assert strip_hop_by_hop(headers) == [("Content-Type", "text/plain")]
    assert strip_hop_by_hop(iter([("X-Plain", "1")])) == [("X-Plain", "1")]
