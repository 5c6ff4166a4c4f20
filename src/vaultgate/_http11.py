"""HTTP/1.1 for the light lanes, sans I/O: a request in one ``bytes``, an answer read by a
generator that the blocking and the asyncio lane both drive with what their socket reads.

Why not h11, which the lanes used first: it is general (both roles, every event, a state
machine per connection) and its per-event bookkeeping was the largest share of the SDK's own
CPU in ``request()`` once httpx's client was out of the way (bench row (e)). The lanes need one
case, a client that sends a whole request and reads a whole answer, and this module does only
that, as strictly as h11 reads an answer:

- the head ends at an empty line (CRLF, or a bare LF as h11 accepts); it may not exceed
  ``MAX_HEAD`` bytes; the status line is ``HTTP/1.x NNN reason``; every header line is a token,
  a colon and a value without control characters; a folded (obsolete) line is refused;
- 1xx answers are skipped (101 refused: the lanes never ask to switch protocols);
- the body is framed by ``Transfer-Encoding: chunked`` (no other coding, as in h11), else by a
  ``Content-Length`` (several must agree), else by the end of the connection; a ``HEAD`` answer,
  a 204 and a 304 have none;
- the connection is kept only when the answer says nothing against it (HTTP/1.1 without
  ``Connection: close``), was framed by length or chunks, and nothing followed it; a pipelining
  reader (``_synclane.SyncLane.pipeline``) passes its own buffer, finds what followed the answer
  left in it (the next answers' bytes), and reads ``Answer.keep`` instead.

A request is written by hand when its headers are plain (validated as h11 validates them);
one with its own ``Transfer-Encoding`` or a ``Content-Length`` that does not match its body is
serialised by h11, so what goes out is always what h11 would have sent.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Final

import h11
import httpx

MAX_HEAD: Final = 65_536
MAX_LINE: Final = 4_096  # a chunk-size or trailer line

_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
_STATUS: Final = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
# A header line: a token, a colon, a value of visible characters, tabs and spaces (no CR).
_FIELD_LINE: Final = rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)\r?\n"
_FIELDS: Final = re.compile(_FIELD_LINE)
_FIELD_BLOCK: Final = re.compile(b"(?:" + _FIELD_LINE + b")*")
_TOKEN: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CHUNK_SIZE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")
_DIGITS: Final = re.compile(rb"[0-9]{1,19}")

Headers = list[tuple[bytes, bytes]]


class ProtocolError(Exception):
    """The answer is not HTTP/1.1 the lanes accept; the connection must be closed."""


class Closed(Exception):
    """The server closed the connection before the answer was complete."""


@dataclass(slots=True)
class Answer:
    status: int
    reason: bytes
    headers: Headers
    body: bytes
    reusable: bool  # ``keep``, and no byte followed the answer
    version: bytes = b"HTTP/1.1"
    keep: bool = False  # the answer lets the connection carry the next one (framed, no close)

    def reply(self, request: httpx.Request) -> Reply | httpx.Response:
        """The answer for a caller that reads only its status, body and headers (a vault
        answer, parsed as JSON): a `Reply`, or the ``httpx.Response`` when its body is
        content-encoded (httpx decodes it)."""
        for name, _ in self.headers:
            if name.lower() == b"content-encoding":
                return self.response(request)
        return Reply(self.status, self.body, self.headers)

    def response(self, request: httpx.Request) -> httpx.Response:
        """The answer as httpx's transports hand it over (no framing header added), read:
        decoded by its ``Content-Encoding`` as httpx's client would."""
        response = httpx.Response(
            self.status,
            headers=self.headers,
            stream=httpx.ByteStream(self.body),
            request=request,
            extensions={"http_version": self.version, "reason_phrase": self.reason},
        )
        response.read()
        return response


@dataclass(slots=True, repr=False)
class Reply:
    """A vault answer as ``vault_json`` and the error tree read it: what an ``httpx.Response``
    of it would say (status, body, headers), without one. Building and reading that response
    (its headers, stream, decoder and chunker) for a token answer whose JSON is all the caller
    reads cost 18 us of the 39 us its read and parse took (timeit, one token answer)."""

    status_code: int
    content: bytes
    raw_headers: Headers

    @property
    def headers(self) -> httpx.Headers:
        return httpx.Headers(self.raw_headers)

    def __repr__(self) -> str:
        # Its body may hold the credential (a token answer): the status only, as httpx's.
        return f"<Reply [{self.status_code}]>"


def request_bytes(method: str, target: bytes, headers: Headers, body: bytes) -> bytes:
    """The request on the wire: head and body in one piece."""
    framing = _plain_framing(headers, body)
    if not framing:
        return _by_h11(method, target, headers, body)
    lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise h11.LocalProtocolError(f"illegal header name {name!r}")
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    head = b"".join(lines)
    # Every line ends in CRLF: one more CR, LF or a NUL anywhere (in the target or a value)
    # would change these counts, so they prove the head is exactly the lines above.
    count = len(headers) + 2
    if head.count(b"\n") != count or head.count(b"\r") != count or b"\0" in head:
        raise h11.LocalProtocolError("illegal character in the request head")
    if not _TOKEN.fullmatch(lines[0]):
        raise h11.LocalProtocolError("illegal method")
    return head + body if body else head


def _plain_framing(headers: Headers, body: bytes) -> bool:
    """True when the body is framed by a Content-Length that matches it (or is empty)."""
    length: bytes | None = None
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            return False
        if lower == b"content-length":
            if length is not None:
                return False
            length = value
    if length is None:
        return not body
    return length == str(len(body)).encode()


def _by_h11(method: str, target: bytes, headers: Headers, body: bytes) -> bytes:
    """h11's own serialisation (and refusal) of a request with unusual framing headers."""
    writer = h11.Connection(h11.CLIENT)
    wire = writer.send(h11.Request(method=method, target=target, headers=headers)) or b""
    if body:
        wire += writer.send(h11.Data(data=body)) or b""
    return wire + (writer.send(h11.EndOfMessage()) or b"")


Reader = Generator[None, bytes, Answer]


def read_answer(method: str, buf: bytearray | None = None) -> Reader:
    """A generator: send it each read (``b""`` at the end of the connection); it returns the
    ``Answer`` (``StopIteration.value``) or raises ``ProtocolError`` or ``Closed``.

    ``buf``: bytes read before (what followed the previous answer on a pipelined connection);
    the reader reads from it first, appends what it is sent, and leaves in it what follows the
    answer. The generator may then return at its first ``next()``.
    """
    if buf is None:
        buf = bytearray()
    while True:  # 1xx answers come before the final one
        scan = 0
        while (end := _HEAD_END.search(buf, scan)) is None:
            if len(buf) > MAX_HEAD:
                raise ProtocolError("the answer's head is too large")
            scan = max(0, len(buf) - 3)
            data = yield
            if not data:
                raise Closed
            buf += data
        if end.start() > MAX_HEAD:
            raise ProtocolError("the answer's head is too large")
        head = bytes(buf[: end.start()]) + b"\n"  # each line, the last one too, ends in LF
        del buf[: end.end()]
        cut = head.index(b"\n")
        matched = _STATUS.fullmatch(head[:cut].removesuffix(b"\r"))
        if matched is None:
            raise ProtocolError("the status line is not HTTP/1.x")
        status = int(matched.group(2))
        block = head[cut + 1 :]
        if not _FIELD_BLOCK.fullmatch(block):
            raise ProtocolError("a header line is malformed or folded")
        headers: Headers = [
            (name, value.rstrip(b" \t")) if value[-1:] in (b" ", b"\t") else (name, value)
            for name, value in _FIELDS.findall(block)
        ]
        if status >= 200:
            break
        if status == 101:
            raise ProtocolError("the server switched protocols")
    reason = matched.group(3) or b""
    version = b"HTTP/1." + matched.group(1)
    keep = version == b"HTTP/1.1"
    chunked = False
    lengths: set[bytes] = set()
    for name, value in headers:
        lower = name.lower()
        if lower == b"connection":
            if any(token.strip() == b"close" for token in value.lower().split(b",")):
                keep = False
        elif lower == b"transfer-encoding":
            if value.lower() != b"chunked" or chunked:
                raise ProtocolError("only chunked transfer coding is supported")
            chunked = True
        elif lower == b"content-length":
            lengths.update(part.strip() for part in value.split(b","))
    if method == "HEAD" or status in (204, 304):
        return Answer(status, reason, headers, b"", keep and not buf, version, keep)
    if chunked:
        if lengths:
            keep = False  # both framings: chunked wins (RFC 9112 6.3), and the line is closed
        body = yield from _chunked(buf)
        return Answer(status, reason, headers, body, keep and not buf, version, keep)
    if lengths:
        if len(lengths) != 1 or not _DIGITS.fullmatch(next(iter(lengths))):
            raise ProtocolError("the Content-Length is invalid")
        size = int(next(iter(lengths)))
        while len(buf) < size:
            data = yield
            if not data:
                raise Closed
            buf += data
        body = bytes(buf[:size])
        del buf[:size]
        return Answer(status, reason, headers, body, keep and not buf, version, keep)
    while data := (yield):  # no framing: the body runs to the end of the connection
        buf += data
    return Answer(status, reason, headers, bytes(buf), False, version)


def _line(buf: bytearray) -> Generator[None, bytes, bytes]:
    while (end := buf.find(b"\n")) < 0:
        if len(buf) > MAX_LINE:
            raise ProtocolError("a chunk line is too long")
        data = yield
        if not data:
            raise Closed
        buf += data
    if end > MAX_LINE:
        raise ProtocolError("a chunk line is too long")
    line = bytes(buf[:end]).removesuffix(b"\r")
    del buf[: end + 1]
    return line


def _chunked(buf: bytearray) -> Generator[None, bytes, bytes]:
    parts: list[bytes] = []
    while True:
        size_line = yield from _line(buf)
        matched = _CHUNK_SIZE.fullmatch(size_line)
        if matched is None:
            raise ProtocolError("a chunk size is malformed")
        size = int(matched.group(1), 16)
        if size == 0:
            while (yield from _line(buf)) != b"":  # trailers: read and dropped, as httpx does
                pass
            return b"".join(parts)
        while len(buf) < size + 2:
            data = yield
            if not data:
                raise Closed
            buf += data
        if buf[size : size + 2] != b"\r\n":
            raise ProtocolError("a chunk does not end in CRLF")
        parts.append(bytes(buf[:size]))
        del buf[: size + 2]
