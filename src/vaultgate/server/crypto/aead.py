"""AES-256-GCM with a versioned, self-describing blob: the one place bytes get sealed.

Blob layout (all lengths in bytes)::

    b"vg1" | len(key_id):1 | key_id:ascii | nonce:12 | ciphertext | tag:16

The header (magic, length, key id) is prepended to the caller's AAD, so swapping the key id
or the format version breaks the tag even when the named key would exist.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultgate.server.crypto.errors import DecryptionError

MAGIC: Final = b"vg1"
KEY_LEN: Final = 32
NONCE_LEN: Final = 12
TAG_LEN: Final = 16
KEY_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Returns the 32-byte key for an id, or None when the id is unknown.
KeyLookup = Callable[[str], bytes | None]


def seal(key: bytes, plaintext: bytes, *, aad: bytes, key_id: str) -> bytes:
    """Seal ``plaintext`` under ``key``; the nonce is random, so two seals never repeat."""
    # 96-bit random nonces are safe for far more messages than one key ever sees here:
    # data keys seal one payload each, master keys wrap one data key per secret version.
    return _seal_with_nonce(key, plaintext, aad=aad, key_id=key_id, nonce=os.urandom(NONCE_LEN))


def open(key_lookup: KeyLookup, blob: bytes, *, aad: bytes) -> bytes:
    """Open a blob made by :func:`seal`, finding its key by the id it carries.

    Every failure (malformed, truncated, unknown key, wrong key, tampering, wrong AAD) raises
    the same :class:`DecryptionError`.
    """
    key_id, header_len = _parse_header(blob)
    key = key_lookup(key_id)
    if key is None or len(key) != KEY_LEN:
        raise DecryptionError
    nonce = blob[header_len : header_len + NONCE_LEN]
    body = blob[header_len + NONCE_LEN :]
    try:
        return AESGCM(key).decrypt(nonce, body, blob[:header_len] + aad)
    except InvalidTag:
        raise DecryptionError from None


def key_id_of(blob: bytes) -> str:
    """The key id a blob names (unauthenticated until the blob is opened)."""
    return _parse_header(blob)[0]


def _seal_with_nonce(
    key: bytes, plaintext: bytes, *, aad: bytes, key_id: str, nonce: bytes
) -> bytes:
    """:func:`seal` with a chosen nonce. Only for known-answer tests: reusing a nonce is fatal."""
    if len(key) != KEY_LEN:
        raise ValueError("an AES-256-GCM key is 32 bytes")
    if len(nonce) != NONCE_LEN:
        raise ValueError("an AES-GCM nonce is 12 bytes")
    header = _header(key_id)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header + aad)


def _header(key_id: str) -> bytes:
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise ValueError("a key id is 1 to 64 characters of letters, digits, '_' or '-'")
    raw = key_id.encode("ascii")
    return MAGIC + bytes([len(raw)]) + raw


def _parse_header(blob: bytes) -> tuple[str, int]:
    """Split off the header; returns (key_id, header length) or raises DecryptionError."""
    if len(blob) < len(MAGIC) + 1 or blob[: len(MAGIC)] != MAGIC:
        raise DecryptionError
    id_len = blob[len(MAGIC)]
    header_len = len(MAGIC) + 1 + id_len
    if len(blob) < header_len + NONCE_LEN + TAG_LEN:
        raise DecryptionError
    try:
        key_id = blob[len(MAGIC) + 1 : header_len].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError from None
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise DecryptionError
    return key_id, header_len
