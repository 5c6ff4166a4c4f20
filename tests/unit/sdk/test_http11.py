"""``_http11``, the lanes' HTTP/1.1 reader and writer: what it accepts, what it refuses, and
that a written request is byte for byte what h11 (the lanes' former writer) would send."""

from __future__ import annotations

import gzip

import h11
import httpx
import pytest

from vaultgate._errors import RateLimitError
from vaultgate._http11 import Answer, Closed, ProtocolError, Reply, read_answer, request_bytes
from vaultgate._protocol import vault_json


def read(raw: bytes, method: str = "GET", *, pieces: int = 1, eof: bool = False) -> Answer:
    """Feed ``raw`` in ``pieces`` reads (then the end of the connection when ``eof``)."""
    reader = read_answer(method)
    next(reader)
    size = max(1, -(-len(raw) // pieces))
    try:
        for start in range(0, len(raw), size):
            reader.send(raw[start : start + size])
        if eof:
            reader.send(b"")
    except StopIteration as done:
        answer: Answer = done.value
        return answer
    raise AssertionError("the answer was not complete")


@pytest.mark.parametrize("pieces", [1, 3, 40])
def test_length_chunked_and_close_framing_in_any_number_of_reads(pieces: int) -> None:
    plain = read(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A:  v \r\n\r\nok", pieces=pieces)
    assert (plain.status, plain.reason, plain.body, plain.reusable) == (
        201,
        b"Created",
        b"ok",
        True,
    )
    assert plain.headers == [(b"Content-Length", b"2"), (b"X-A", b"v")]
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n1;x=y\r\n!\r\n0\r\n\r\n"
    )
    assert read(chunked, pieces=pieces).body == b"ok!"
    until_close = read(b"HTTP/1.1 200 OK\r\n\r\nall of it", pieces=pieces, eof=True)
    assert (until_close.body, until_close.reusable) == (b"all of it", False)


def test_no_body_for_head_204_and_304_and_1xx_skipped() -> None:
    assert read(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD").body == b""
    assert read(b"HTTP/1.1 204 No Content\r\n\r\n").reusable
    assert read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n").status == 304


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",  # a byte more than framed
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
)
def test_a_connection_is_not_kept_when_the_answer_says_or_looks_otherwise(raw: bytes) -> None:
    assert not read(raw).reusable


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
)
def test_malformed_answers_are_refused(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        read(raw)


def test_the_end_of_the_connection_mid_answer_is_closed() -> None:
    with pytest.raises(Closed):
        read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", eof=True)
    with pytest.raises(Closed):
        read(b"HTTP/1.1 200", eof=True)


def h11_bytes(method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    writer = h11.Connection(h11.CLIENT)
    wire = writer.send(h11.Request(method=method, target=target, headers=headers)) or b""
    if body:
        wire += writer.send(h11.Data(data=body)) or b""
    return wire + (writer.send(h11.EndOfMessage()) or b"")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([(b"Host", b"v"), (b"Content-Length", b"2"), (b"X-Alter-Nonce", b"ab")], b"{}"),
        ([(b"Host", b"v")], b""),
        ([(b"Host", b"v"), (b"Transfer-Encoding", b"chunked")], b"abc"),  # h11 writes it
    ],
)
def test_requests_are_written_as_h11_writes_them(
    headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    ours = request_bytes("POST", b"/sdk/token?a=1", headers, body)
    assert ours == h11_bytes("POST", b"/sdk/token?a=1", headers, body)


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        (b"/x", [(b"Host", b"v"), (b"X-A", b"a\r\nX-Injected: 1")]),
        (b"/x", [(b"Host", b"v"), (b"X-A", b"a\x00")]),
        (b"/x", [(b"Host", b"v"), (b"Bad Name", b"1")]),
        (b"/x HTTP/1.1\r\nX: y", [(b"Host", b"v")]),
        (b"/x", [(b"Host", b"v"), (b"Content-Length", b"5")]),  # does not match the body
    ],
)
def test_requests_that_would_split_or_lie_are_refused(
    target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(h11.LocalProtocolError):
        request_bytes("POST", target, headers, b"ab")


def test_a_reply_says_what_the_response_of_the_same_answer_says() -> None:
    """A vault answer read as JSON skips ``httpx.Response``: its status, body and headers are
    the response's own, and a content-encoded answer still gets httpx's decoding."""
    request = httpx.Request("POST", "http://vault.test/sdk/token")
    raw = b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Request-ID: r1\r\n\r\n{"ok":true}'
    reply = read(raw).reply(request)
    response = read(raw).response(request)
    assert isinstance(reply, Reply)
    assert (reply.status_code, reply.content) == (response.status_code, response.content)
    assert reply.headers == response.headers
    assert reply.headers["x-request-id"] == "r1"  # case-insensitive, as httpx's
    assert vault_json(reply, secrets=()) == {"ok": True}

    packed = gzip.compress(b'{"ok":true}')
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
    decoded = read(head + packed).reply(request)
    assert isinstance(decoded, httpx.Response)
    assert vault_json(decoded, secrets=()) == {"ok": True}


def test_a_reply_carries_a_vault_error_as_the_typed_error() -> None:
    body = b'{"detail":{"error":"rate_limit_exceeded","message":"slow down"}}'
    raw = b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: %d\r\n\r\n" % len(body)
    reply = read(raw + body).reply(httpx.Request("POST", "http://vault.test/sdk/token"))
    with pytest.raises(RateLimitError) as raised:
        vault_json(reply, secrets=())
    assert raised.value.retry_after == 7


def test_a_reply_never_shows_its_body_or_headers() -> None:
    """A token answer's body is the credential: a Reply's repr names its status only."""
    canary = b"sk-canary-7f3e9d"
    body = b'{"access_token":"' + canary + b'"}'
    raw = b"HTTP/1.1 200 OK\r\nX-Echo: " + canary + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
    reply = read(raw + body).reply(httpx.Request("POST", "http://vault.test/sdk/token"))
    assert repr(reply) == str(reply) == "<Reply [200]>"
    assert canary.decode() not in repr(reply)
