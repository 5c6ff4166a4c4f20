"""API keys: minted once, stored as a keyed hash, verified with one HMAC (no slow KDF).

A key is 240 bits of randomness, so a keyed SHA-256 is enough; argon2 would put milliseconds on
every request for no gain (DESIGN 9).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

KeyKind = Literal["admin", "app"]

ADMIN_PREFIX: Final = "vg_admin_"
APP_PREFIX: Final = "alter_key_"
_ALPHABET: Final = string.ascii_letters + string.digits + "-_"
_BODY = r"[A-Za-z0-9_-]{40}"
ADMIN_KEY_RE: Final = re.compile(rf"^{ADMIN_PREFIX}{_BODY}$")
APP_KEY_RE: Final = re.compile(rf"^{APP_PREFIX}{_BODY}$")


def mint(kind: KeyKind) -> str:
    prefix = ADMIN_PREFIX if kind == "admin" else APP_PREFIX
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(40))


def kind_of(presented: str) -> KeyKind | None:
    """The kind a well-formed key claims to be, or None for anything malformed."""
    if ADMIN_KEY_RE.match(presented):
        return "admin"
    if APP_KEY_RE.match(presented):
        return "app"
    return None


def key_hash(hash_key: bytes, presented: str) -> str:
    return hmac.new(hash_key, presented.encode(), hashlib.sha256).hexdigest()


def hint(presented: str) -> str:
    """A few characters a human can recognise a key by (prefix plus the last four)."""
    prefix = ADMIN_PREFIX if presented.startswith(ADMIN_PREFIX) else APP_PREFIX
    return f"{prefix}...{presented[-4:]}"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API key: what it may touch, never the key itself."""

    key_id: str
    kind: KeyKind
    app_id: str | None
    name: str
    expires_at: datetime | None
    generation: int = 0  # the change count its cache entry was loaded under (fleet.changes)
    # A managed agent's key: the agent it verifiably belongs to (never the caller's own claim).
    agent_id: str | None = None
    agent_name: str | None = None
    agent_status: str | None = None  # active / inactive / revoked
    key_deprecated: bool = False  # an agent key marked deprecated (still works, flagged)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"
