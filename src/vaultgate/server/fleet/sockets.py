"""The listening sockets of ``serve --workers N``: bound once, by the parent, one per worker.

One socket per worker in a SO_REUSEPORT group spreads connections evenly (a single shared
socket lets one worker accept nearly every keep-alive connection while the others idle). But a
plain SO_REUSEPORT group admits any later socket of the same user, and the kernel would hand it
a share of the connections, with their API keys. So the parent binds all N sockets before any
worker starts and attaches a classic BPF program that picks a socket by index, ``random % N``:
a socket joining later sits at index N or beyond and is never picked. The parent keeps every
socket open for its whole life, so a worker's death never reorders the group either (its
replacement takes over the same socket and the connections queued on it).
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Final

SO_ATTACH_REUSEPORT_CBPF: Final = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)
BACKLOG: Final = 2048

# struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}, from linux/filter.h and linux/bpf_common.h
_LD_W_ABS: Final = 0x00 | 0x00 | 0x20
_ALU_MOD_K: Final = 0x04 | 0x90 | 0x00
_RET_A: Final = 0x06 | 0x10
_SKF_AD_RANDOM: Final = (-0x1000 + 56) & 0xFFFFFFFF  # SKF_AD_OFF + SKF_AD_RANDOM


def bind_group(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` that only they can receive connections of."""
    if count < 1:
        raise ValueError("a group needs at least one socket")
    if port:
        refuse_taken(host, port)
    group = [_listening(host, port)]
    bound_port = group[0].getsockname()[1]
    group.extend(_listening(host, bound_port) for _ in range(count - 1))
    _steer(group[0], count)
    return group


def listen_refusal(host: str, port: int, exc: OSError) -> str:
    """The one line `serve` stops with when it cannot listen on ``host:port``."""
    return f"refusing to start: cannot listen on {host}:{port}: {exc.strerror or exc}"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def refuse_taken(host: str, port: int) -> None:
    """``OSError`` (EADDRINUSE) when anything listens on ``host:port``, another vault included.

    A socket of the group would join another process's SO_REUSEPORT group of the same user
    without a word (and, behind its BPF program, never be handed a connection): a second vault
    started on a taken port would look up and serve nothing. A probe bound without
    SO_REUSEPORT conflicts with every listener on the port, so it says the port is taken.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        probe.bind((host, port))


def _listening(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _steer(member: socket.socket, count: int) -> None:
    """Attach ``return random() % count`` as the group's socket selector."""
    program = [(_LD_W_ABS, 0, 0, _SKF_AD_RANDOM), (_ALU_MOD_K, 0, 0, count), (_RET_A, 0, 0, 0)]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))
    # struct sock_fprog {unsigned short len; struct sock_filter *filter;}; the kernel copies the
    # program during the call, so ``code`` only has to outlive it.
    fprog = struct.pack("HL", len(program), ctypes.addressof(code))
    member.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
