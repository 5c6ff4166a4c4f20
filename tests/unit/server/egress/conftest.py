"""Real loopback servers for the egress tests: an upstream that records, an evil one that must
stay untouched, and a raw socket server for answers aiohttp.web would not send."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from vaultgate.server.egress import AddressGuard, Target, UpstreamClient, parse_target

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
# Test names resolve to loopback, the way a hostile DNS answer would.
FAKE_DNS = {"upstream.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]}


async def fake_resolve(host: str, port: int) -> list[str]:
    if host not in FAKE_DNS:
        raise OSError(f"unknown test host {host}")
    return FAKE_DNS[host]


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Server:
    port: int
    requests: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    second_sent: asyncio.Event = field(default_factory=asyncio.Event)
    hang: asyncio.Event = field(default_factory=asyncio.Event)
    evil_port: int = 0

    def target(self, path: str, host: str = "upstream.test") -> Target:
        return parse_target(f"http://{host}:{self.port}{path}")


def _build_app(server: Server) -> web.Application:
    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        server.requests.append(Seen(request.method, request.path_qs, headers, body))
        return web.json_response({"ok": True}, headers={"Set-Cookie": "session=abc; Path=/"})

    async def redirect(request: web.Request) -> web.Response:
        server.requests.append(Seen(request.method, request.path_qs, [], b""))
        location = f"http://evil.test:{server.evil_port}/steal"
        return web.Response(status=302, headers={"Location": location})

    async def sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: one\ndata: first\n\n")
        await server.release.wait()
        server.second_sent.set()
        await response.write(b"event: two\ndata: last\n\n")
        await response.write_eof()
        return response

    async def slow_headers(request: web.Request) -> web.Response:
        await server.hang.wait()
        return web.Response(text="late")

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"start")
        await server.hang.wait()
        return response

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 10_000)

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"hello"), headers={"Content-Encoding": "gzip"})

    app = web.Application(client_max_size=16 << 20)  # room for the large-body tests
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/sse", sse)
    app.router.add_get("/slow-headers", slow_headers)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/big", big)
    app.router.add_get("/gzip", gzipped)
    app.router.add_route("*", "/{tail:.*}", record)
    return app


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def evil() -> AsyncIterator[Server]:
    server = Server(port=0)
    runner, server.port = await _serve(_build_app(server))
    yield server
    await runner.cleanup()


@pytest.fixture
async def upstream(evil: Server) -> AsyncIterator[Server]:
    server = Server(port=0, evil_port=evil.port)
    runner, server.port = await _serve(_build_app(server))
    yield server
    server.hang.set()
    server.release.set()
    await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    guard = AddressGuard(LOOPBACK, resolve=fake_resolve)
    async with UpstreamClient(guard) as upstream_client:
        yield upstream_client


@pytest.fixture
async def strict_client() -> AsyncIterator[UpstreamClient]:
    """No private destinations opened: the production default."""
    async with UpstreamClient(AddressGuard(resolve=fake_resolve)) as upstream_client:
        yield upstream_client


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[bytes], Awaitable[int]]]:
    """Starts a socket server that answers every request with the given bytes; returns its port."""
    servers: list[asyncio.Server] = []

    async def start(answer: bytes) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
