"""The upstream socket: a reset met by a write leaves the answer before it readable.

Plain blocking sockets on loopback, one peer that answers and resets; no event loop, so the order
of the reset and the writes is fixed by the test, not raced.
"""

from __future__ import annotations

import select
import socket
import struct
from collections.abc import Iterator

import pytest

from vaultgate.server.egress.sockets import UpstreamSocket, upstream_socket

ANSWER = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\nno"
WAIT = 30.0


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(WAIT)
        yield server


def _connect(sock: socket.socket, listener: socket.socket) -> socket.socket:
    sock.settimeout(WAIT)
    sock.connect(listener.getsockname())
    peer, _ = listener.accept()
    return peer


def _answer_and_reset(peer: socket.socket, client: socket.socket) -> None:
    """The peer answers, then closes with SO_LINGER 0 (RST); returns once the reset is in."""
    peer.sendall(ANSWER)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    poller = select.poll()
    poller.register(client, select.POLLHUP | select.POLLERR)
    assert poller.poll(WAIT * 1000), "the reset never arrived"


def test_a_plain_socket_loses_the_answer_to_the_write_that_meets_the_reset(
    listener: socket.socket,
) -> None:
    """What the fix is for: the write raises, and asyncio closes the socket on that error."""
    with socket.socket() as client:
        _answer_and_reset(_connect(client, listener), client)
        with pytest.raises(ConnectionResetError):
            client.send(b"more of the body")
        assert client.recv(1024) == ANSWER  # still there: only the close would lose it


def test_a_write_after_the_reset_is_taken_and_the_answer_read_first(
    listener: socket.socket,
) -> None:
    with UpstreamSocket(socket.AF_INET, socket.SOCK_STREAM, 0) as client:
        _answer_and_reset(_connect(client, listener), client)
        assert client.send(b"more of the body") == len(b"more of the body")
        assert client.send(memoryview(b"and more")) == len(b"and more")
        assert client.recv(1024) == ANSWER
        with pytest.raises(ConnectionResetError):
            client.recv(1024)  # the reset, where a plain socket would say end of stream


def test_the_reset_ends_recv_into_too(listener: socket.socket) -> None:
    """asyncio reads a buffered protocol (its TLS layer) with recv_into."""
    with UpstreamSocket(socket.AF_INET, socket.SOCK_STREAM, 0) as client:
        _answer_and_reset(_connect(client, listener), client)
        client.send(b"more of the body")
        buffer = bytearray(1024)
        assert buffer[: client.recv_into(buffer)] == ANSWER
        with pytest.raises(ConnectionResetError):
            client.recv_into(buffer)


def test_the_reset_ends_sendmsg_writes_the_same_way(listener: socket.socket) -> None:
    with UpstreamSocket(socket.AF_INET, socket.SOCK_STREAM, 0) as client:
        _answer_and_reset(_connect(client, listener), client)
        assert client.sendmsg([b"more", memoryview(b" of it")]) == len(b"more of it")
        assert client.recv(1024) == ANSWER
        with pytest.raises(ConnectionResetError):
            client.recv(1024)


def test_a_clean_close_still_reads_as_the_end_of_the_stream(listener: socket.socket) -> None:
    """The allowed twin: no reset met, nothing changed."""
    with UpstreamSocket(socket.AF_INET, socket.SOCK_STREAM, 0) as client:
        peer = _connect(client, listener)
        assert client.send(b"GET / HTTP/1.1\r\n\r\n") == 18
        assert peer.recv(1024) == b"GET / HTTP/1.1\r\n\r\n"
        peer.sendall(ANSWER)
        peer.close()
        assert client.recv(1024) == ANSWER
        assert client.recv(1024) == b""


def test_the_factory_makes_the_socket_the_address_asks_for() -> None:
    [info] = socket.getaddrinfo("127.0.0.1", 80, socket.AF_INET, socket.SOCK_STREAM)
    family, type_, proto, canonname, address = info
    with upstream_socket((family, type_, proto, canonname, address)) as sock:
        assert isinstance(sock, UpstreamSocket)
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_STREAM)
