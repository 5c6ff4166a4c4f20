"""The upstream's sockets: an answer that came before a reset is read, not lost with the write.

An upstream may answer before it has read the request body (a 401, a 413) and then close at once
with the body unread, which makes its kernel send RST. The answer is already in the vault's
receive queue, and stays readable there after the reset (Linux keeps it). But the reset surfaces
on the vault's next ``send`` too, and asyncio takes a failed write as the end of the connection:
it stops reading and closes the socket, so an answer the event loop had not read yet is dropped
and the forward ends 502. Whether the read or the write meets the reset first is a race that the
write lost one time in ten or more (tests/functional/injection/test_proxy_framing.py counts it).

`UpstreamSocket` takes the write's side out of that race: a ``send`` that meets a reset reports
the bytes as sent (nobody can receive them any more), so the event loop goes on reading; the
reads return what the upstream sent before it reset, and then, where the kernel would report a
plain end of stream, the reset itself. An upstream that reset without answering still ends the
forward in a transport error, found by the read instead of the write; one that answered has its
answer relayed as it sent it.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from typing import Any

import aiohttp

# What a send into a connection the peer has reset raises: ECONNRESET for the first send after
# the RST arrived, EPIPE for any later one.
_RESET_ON_WRITE = (ConnectionResetError, BrokenPipeError)


class UpstreamSocket(socket.socket):
    """A TCP socket whose writes defer a peer's reset to its reads (see the module docstring)."""

    __slots__ = ("_reset",)

    def __init__(self, family: int, type_: int, proto: int) -> None:
        super().__init__(family, type_, proto)
        self._reset = False  # a send met the peer's reset; the reads report it at their end

    def send(self, data: Any, flags: int = 0) -> int:
        if self._reset:
            return _size(data)
        try:
            return super().send(data, flags)
        except _RESET_ON_WRITE:
            self._reset = True
            return _size(data)

    def sendmsg(self, buffers: Iterable[Any], *args: Any) -> int:
        # asyncio's writelines path (Python 3.12 on) sends through sendmsg.
        buffers = list(buffers)
        if self._reset:
            return sum(_size(b) for b in buffers)
        try:
            return super().sendmsg(buffers, *args)
        except _RESET_ON_WRITE:
            self._reset = True
            return sum(_size(b) for b in buffers)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        if not data and self._reset:
            raise _reset_error()
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        # asyncio reads through recv_into for a buffered protocol (the TLS layer is one).
        count = super().recv_into(buffer, nbytes, flags)
        if not count and self._reset:
            raise _reset_error()
        return count


def upstream_socket(addr_info: aiohttp.AddrInfoType) -> socket.socket:
    """The socket factory for aiohttp's connector (``TCPConnector(socket_factory=...)``)."""
    family, type_, proto, _, _ = addr_info
    return UpstreamSocket(family, type_, proto)


def _size(data: Any) -> int:
    return memoryview(data).nbytes


def _reset_error() -> ConnectionResetError:
    # The end of the stream after a reset is the reset, not a clean close: a body framed by the
    # close would otherwise pass for complete.
    return ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
