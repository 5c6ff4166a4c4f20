"""One parser for destination URLs, used both to decide policy and to connect.

A URL is read once into a `Target`; the policy check, the address guard and the upstream client all
see that same object, so no second parser can disagree about which host is meant (the classic
``https://api.openai.com@evil.com/`` and ``https://evil.com\\@api.openai.com/`` confusions are
refused outright rather than interpreted).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

import idna

from vaultgate.server.errors import InvalidInput

MAX_URL_BYTES: Final = 8192
DEFAULT_PORTS: Final = {"http": 80, "https": 443}

_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL_RE: Final = re.compile(r"[a-z0-9_-]{1,63}")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
_HEX: Final = "0123456789abcdefABCDEF"
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Unicode categories never allowed anywhere in a URL: controls, format characters (zero-width and
# bidi overrides that make a URL read differently from what it is), lone surrogates, separators.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
# Printable ASCII that WHATWG percent-encodes in a path or query; the rest is kept byte for byte.
_PATH_ENCODE: Final = frozenset('"<>`{}')
_QUERY_ENCODE: Final = frozenset('"<>')


def _bad_url(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_url", field="url")


def _bad_path(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_path", field="url")


@dataclass(frozen=True, slots=True)
class Target:
    """A destination as it will be connected to; build it with `parse_target`.

    ``host`` is normalised (lower case, IDNA A-labels, no trailing dot, IPv4 in dotted-quad form,
    IPv6 compressed and without brackets); ``port`` is always set; ``path`` and ``query`` are the
    raw strings sent upstream (``query`` without the ``?``, empty when there is none).
    """

    scheme: str
    host: str
    port: int
    path: str = "/"
    query: str = ""

    def __repr__(self) -> str:
        # The query may carry an injected credential (an API taking its key as a parameter).
        query = "''" if not self.query else "<redacted>"
        return (
            f"Target(scheme={self.scheme!r}, host={self.host!r}, port={self.port}, "
            f"path={self.path!r}, query={query})"
        )

    @property
    def is_ip(self) -> bool:
        return _ip_literal(self.host) is not None

    @property
    def netloc(self) -> str:
        """``host[:port]`` as the Host header wants it: brackets for IPv6, default port left out."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    @property
    def url(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.origin}{self.path}{query}"

    def normalized(self) -> Target:
        """This target with its path put through `normalize_path`: what policy checks and sends."""
        return replace(self, path=normalize_path(self.path))


def parse_target(url: str) -> Target:
    """Parse an absolute http(s) URL, refusing every ambiguous form with ``InvalidInput`` (400)."""
    if len(url) > MAX_URL_BYTES:
        raise _bad_url(f"the URL is longer than {MAX_URL_BYTES} bytes")
    _check_characters(url)
    match = _SCHEME_RE.match(url)
    if match is None:
        raise _bad_url("the URL must be absolute, starting with https:// or http://")
    scheme = match.group(1).lower()
    if scheme not in DEFAULT_PORTS:
        raise _bad_url("only http and https URLs can be forwarded")
    rest = url[match.end() :]
    if "\\" in rest[:2]:
        raise _bad_url("the URL contains a backslash before its path")
    if not rest.startswith("//"):
        raise _bad_url("the URL has no host")
    end = _authority_end(rest, 2)
    host, port = _split_authority(rest[2:end], scheme)
    path, query = _split_path_query(rest[end:])
    target = Target(scheme=scheme, host=host, port=port, path=path, query=query)
    if len(target.url.encode()) > MAX_URL_BYTES:
        raise _bad_url(f"the URL is longer than {MAX_URL_BYTES} bytes")
    return target


def _check_characters(url: str) -> None:
    for char in url:
        if char <= " " or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise _bad_url("the URL contains a control character or a space")


def _authority_end(rest: str, start: int) -> int:
    ends = [i for i in (rest.find(c, start) for c in "/?#") if i != -1]
    return min(ends, default=len(rest))


def _split_authority(authority: str, scheme: str) -> tuple[str, int]:
    if "\\" in authority:
        raise _bad_url("the URL contains a backslash before its path")
    if "@" in authority:
        raise _bad_url("the URL must not contain a user name or password")
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            raise _bad_url("the URL has an unterminated IPv6 address")
        raw_host, after = authority[: close + 1], authority[close + 1 :]
        if after and not after.startswith(":"):
            raise _bad_url("the URL has characters after its IPv6 address")
        raw_port = after[1:] if after else None
    elif ":" in authority:
        raw_host, _, raw_port = authority.partition(":")
    else:
        raw_host, raw_port = authority, None
    return normalize_host(raw_host), _parse_port(raw_port, scheme)


def _parse_port(raw: str | None, scheme: str) -> int:
    if raw is None:
        return DEFAULT_PORTS[scheme]
    if not _PORT_RE.fullmatch(raw) or not 0 < int(raw) < 65536:
        raise _bad_url("the URL has an invalid port")
    return int(raw)


def _split_path_query(rest: str) -> tuple[str, str]:
    # The fragment never leaves the client, so it is dropped, not forwarded.
    rest = rest.partition("#")[0]
    path, _, query = rest.partition("?")
    return _encode(path or "/", _PATH_ENCODE), _encode(query, _QUERY_ENCODE)


def _encode(text: str, extra: frozenset[str]) -> str:
    if text.isascii() and not any(c in extra for c in text):
        return text
    return "".join(
        "".join(f"%{b:02X}" for b in c.encode()) if (c in extra or not c.isascii()) else c
        for c in text
    )


def normalize_host(raw: str) -> str:
    """The canonical form of a host as written in a URL, or ``InvalidInput``."""
    if not raw:
        raise _bad_url("the URL has no host")
    if "%" in raw:
        raise _bad_url("the URL host must not contain '%'")
    if raw.startswith("["):
        return _normalize_ipv6(raw)
    host = raw[:-1] if raw.endswith(".") else raw
    host = host if host.isascii() else _to_a_labels(host)
    host = host.lower()
    if _ends_in_number(host):
        return _parse_ipv4(host)
    _check_domain(host)
    return host


def _normalize_ipv6(raw: str) -> str:
    if not raw.endswith("]"):
        raise _bad_url("the URL has an unterminated IPv6 address")
    try:
        return ipaddress.IPv6Address(raw[1:-1]).compressed
    except ValueError:
        raise _bad_url("the URL has an invalid IPv6 address") from None


def _to_a_labels(host: str) -> str:
    # IDNA 2008 without the UTS 46 mapping: look-alikes that a mapping would fold into ASCII
    # (full-width letters, ideographic full stops) are refused instead of quietly converted.
    lowered = "".join(c.lower() if c.isascii() else c for c in host)
    try:
        encoded = idna.encode(lowered, strict=True).decode("ascii")
        clean = idna.decode(encoded) == lowered
    except (idna.IDNAError, UnicodeError, ValueError):
        clean = False
    if not clean:
        raise _bad_url("the URL host is not a valid internationalised domain name")
    return encoded


def _check_domain(host: str) -> None:
    if len(host) > 253:
        raise _bad_url("the URL host is too long")
    for label in host.split("."):
        if not _LABEL_RE.fullmatch(label):
            raise _bad_url("the URL host is not a valid domain name")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError):
                raise _bad_url("the URL host is not a valid A-label (xn--)") from None


def _ipv4_number(part: str) -> int | None:
    """One part of a legacy IPv4 spelling (decimal, 0-octal, 0x-hex), read as WHATWG does."""
    if part[:2] in ("0x", "0X"):
        digits, radix, allowed = part[2:], 16, _HEX
    elif len(part) > 1 and part.startswith("0"):
        digits, radix, allowed = part[1:], 8, "01234567"
    else:
        digits, radix, allowed = part, 10, "0123456789"
    if not part or not all(c in allowed for c in digits):
        return None
    return int(digits, radix) if digits else 0


def _ends_in_number(host: str) -> bool:
    last = host.rsplit(".", 1)[-1]
    return bool(last) and (last.isdigit() or _ipv4_number(last) is not None)


def _parse_ipv4(host: str) -> str:
    """Any inet_aton spelling (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) to dotted quad."""
    parts = host.split(".")
    numbers = [_ipv4_number(p) for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise _bad_url("the URL host looks like an IP address but is not a valid one")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise _bad_url("the URL host looks like an IP address but is not a valid one")
    address = values[-1]
    for index, value in enumerate(values[:-1]):
        address += value << (8 * (3 - index))
    return str(ipaddress.IPv4Address(address))


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def normalize_path(path: str) -> str:
    """The path that policy globs are matched against and that is sent upstream.

    Unreserved characters (and so ``%2e``) are decoded, other escapes upper-cased, ``//`` collapsed
    and dot segments resolved. Encoded slashes, backslashes, NUL and a climb above the root are
    refused: an upstream could read them as separators that the policy check never saw.
    """
    if not path.startswith("/"):
        raise _bad_path("the path must start with '/'")
    decoded = _decode_unreserved(path)
    segments: list[str] = []
    parts = decoded.split("/")[1:]
    for index, segment in enumerate(parts):
        last = index == len(parts) - 1
        _refuse_dot_parameter(segment)
        if segment == "..":
            if not segments:
                raise _bad_path("the path climbs above the root")
            segments.pop()
            if last:
                segments.append("")
        elif segment == "." or (segment == "" and not last):
            if last:
                segments.append("")
        else:
            segments.append(segment)
    return "/" + "/".join(segments)


def _refuse_dot_parameter(segment: str) -> None:
    """``..;x`` and ``.;x`` are refused: Tomcat, Jetty and Spring drop the ``;`` parameter and
    read the segment as a dot segment, a climb that the policy check (which sees a plain name)
    never resolved. ``%3B`` counts too, since some servers decode before they split."""
    if ";" not in segment and "%3B" not in segment:
        return
    name = segment.split(";", 1)[0].split("%3B", 1)[0]
    if name in (".", ".."):
        raise _bad_path(f"the path segment {segment[:32]!r} is a dot segment with a ';' parameter")


def _decode_unreserved(path: str) -> str:
    if "\\" in path or "\x00" in path:
        raise _bad_path("the path contains a backslash or NUL")
    pieces = path.split("%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        code = piece[:2]
        if len(code) < 2 or not all(c in _HEX for c in code):
            raise _bad_path("the path contains an invalid percent escape")
        char = chr(int(code, 16))
        if char in "/\\\x00":
            raise _bad_path("the path contains an encoded slash, backslash or NUL")
        out.append((char if char in _UNRESERVED else f"%{code.upper()}") + piece[2:])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One allowed-host entry of a secret; build it with `parse_allowed_host`.

    For a wildcard, ``host`` is the domain under the ``*`` label, which matches exactly one label.
    """

    scheme: str
    host: str
    port: int
    wildcard: bool = False

    def __str__(self) -> str:
        host = f"*.{self.host}" if self.wildcard else self.host
        return Target(self.scheme, host, self.port).origin

    def matches(self, target: Target) -> bool:
        if target.scheme != self.scheme or target.port != self.port:
            return False
        if not self.wildcard:
            return target.host == self.host
        label, dot, rest = target.host.partition(".")
        return bool(label and dot) and rest == self.host and not target.is_ip

    def origin_for_default(self) -> str:
        """The origin the transparent proxy forwards to when this entry is a grant's first host."""
        if self.wildcard:
            raise ValueError(f"the wildcard entry {self} cannot be a default origin")
        return Target(self.scheme, self.host, self.port).origin


def parse_allowed_host(entry: str) -> HostPattern:
    """Read ``host``, ``host:port``, ``*.domain`` or ``scheme://host[:port]``; else ``ValueError``.

    The scheme defaults to https (plain http only where the entry says ``http://``) and the port
    to the scheme's default; the host goes through the same normalisation as `parse_target`.
    """
    text, scheme = entry.strip(), "https"
    if "://" in text:
        raw_scheme, _, text = text.partition("://")
        scheme = raw_scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"allowed host {entry!r}: the scheme must be https or http")
        text = text.removesuffix("/")
    if not text or any(c in text for c in "/?#@\\"):
        raise ValueError(
            f"allowed host {entry!r} must be host, host:port, *.domain or scheme://host[:port]"
        )
    wildcard = text.startswith("*.")
    text = text.removeprefix("*.")
    if "*" in text:
        raise ValueError(f"allowed host {entry!r}: '*' may only be the whole first label")
    try:
        target = parse_target(f"{scheme}://{text}/")
    except InvalidInput as exc:
        raise ValueError(f"allowed host {entry!r}: {exc.message}") from None
    if wildcard and (target.is_ip or "." not in target.host):
        raise ValueError(f"allowed host {entry!r}: a wildcard needs a domain of two labels or more")
    return HostPattern(scheme=scheme, host=target.host, port=target.port, wildcard=wildcard)


def host_allowed(target: Target, patterns: Iterable[HostPattern]) -> bool:
    return any(pattern.matches(target) for pattern in patterns)
