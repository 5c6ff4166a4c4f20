"""Offline checks of what a client is constructed with: the API key, the caller, the base URL.

They run before any connection is opened, so a typo fails at construction with an
``AlterValueError`` and the key is never sent to a place it should not go.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Mapping
from typing import Final

import httpx

from ._errors import AlterValueError

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8200"
# First match wins: our own variable, then the one the official client reads.
BASE_URL_ENV: Final = ("VAULTGATE_URL", "ALTER_BASE_URL")

_LEGACY_KEY: Final = re.compile(r"alter_key_[A-Za-z0-9_-]{40}")
_SCOPED_KEY: Final = re.compile(r"alter_(rk|ak|dk|pk)_([a-z2-7]{22})_([a-z2-7]{6})")
_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"
_CALLER: Final = re.compile(r"[\x20-\x7e]{1,255}")
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def _scoped_checksum(key_type: str, random_part: str) -> str:
    # A CRC typo gate, not a security check: the server stays the authority.
    crc = zlib.crc32(f"{key_type}:{random_part}".encode())
    return "".join(_BASE32[(crc >> (5 * i)) & 0x1F] for i in range(6))


def is_valid_key(key: object) -> bool:
    """Whether ``key`` has the grammar of an app key (legacy or scoped with a good checksum)."""
    if not isinstance(key, str):
        return False
    if _LEGACY_KEY.fullmatch(key):
        return True
    scoped = _SCOPED_KEY.fullmatch(key)
    if scoped is None:
        return False
    key_type, random_part, checksum = scoped.groups()
    return _scoped_checksum(key_type, random_part) == checksum


def check_api_key(key: object) -> str:
    if not is_valid_key(key):
        # Never echo the value: a mistyped key is still mostly a key.
        raise AlterValueError("api_key is not a valid vault app key", code="invalid_api_key")
    assert isinstance(key, str)
    return key


def check_caller(caller: str | None) -> str | None:
    if caller is not None and not _CALLER.fullmatch(caller):
        raise AlterValueError(
            "caller must be 1 to 255 printable ASCII characters", code="invalid_caller"
        )
    return caller


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def resolve_base_url(base_url: str | None, env: Mapping[str, str] | None) -> str:
    """The vault's URL: the argument, else the environment, else the local default.

    Plain http is allowed only on loopback, because the key travels in every request.
    """
    if base_url is None:
        source = os.environ if env is None else env
        base_url = next((source[name] for name in BASE_URL_ENV if source.get(name)), None)
    raw = (base_url or DEFAULT_BASE_URL).strip()
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError) as exc:
        raise AlterValueError("base_url is not a valid URL", code="invalid_base_url") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise AlterValueError(
            "base_url must be an http(s) URL with a host", code="invalid_base_url"
        )
    if url.userinfo or url.query or url.fragment:
        raise AlterValueError(
            "base_url must not carry credentials, a query or a fragment", code="invalid_base_url"
        )
    if url.scheme == "http" and not is_loopback(url.host):
        raise AlterValueError(
            "base_url must use https unless it points at loopback", code="invalid_base_url"
        )
    return str(url).rstrip("/")


def redact_key(key: str) -> str:
    """A display form that identifies the key's kind and nothing of its secret part."""
    prefix = key[: key.index("_", len("alter_")) + 1] if key.startswith("alter_") else ""
    return f"{prefix}**********"
