"""What an audit event is: its fields, its names, and the cleaning every caller-supplied text gets.

An event that can be constructed can be stored: ``__post_init__`` refuses anything that would make
the database reject the row, because one bad row would fail the whole group-committed batch and
refuse every request in it.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from time import time_ns as _time_ns
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Event names read "noun:verb" (warehouse style); a use and its denial are distinct events so a
# filter on one never has to inspect the outcome.
GRANT_USE: Final = "grant:use"
GRANT_DENY: Final = "grant:deny"
GRANT_OUTCOME: Final = "grant:outcome"
GRANT_CLONE: Final = "grant:clone"
GRANT_UPDATE: Final = "grant:update"
GRANT_REVOKE: Final = "grant:revoke"
SECRET_CREATE: Final = "secret:create"
SECRET_ROTATE: Final = "secret:rotate"
SECRET_DELETE: Final = "secret:delete"
KEY_CREATE: Final = "key:create"
KEY_REVOKE: Final = "key:revoke"
APP_CREATE: Final = "app:create"
APP_DELETE: Final = "app:delete"
MASTER_KEY_ROTATE: Final = "master_key:rotate"
PORTAL_LOGIN: Final = "portal:login"
PORTAL_LOGIN_FAILED: Final = "portal:login_failed"
PORTAL_LOGOUT: Final = "portal:logout"
USER_CREATE: Final = "user:create"
APPROVAL_REQUESTED: Final = "approval:requested"
APPROVAL_DECIDED: Final = "approval:decided"
APPROVAL_EXECUTED: Final = "approval:executed"
APPROVAL_EXPIRED: Final = "approval:expired"
AGENT_CREATE: Final = "agent:create"
AGENT_UPDATE: Final = "agent:update"
AGENT_SUSPEND: Final = "agent:suspend"
AGENT_RESUME: Final = "agent:resume"
AGENT_REVOKE: Final = "agent:revoke"
KEY_DEPRECATE: Final = "key:deprecate"
KEY_UNDEPRECATE: Final = "key:undeprecate"
# Alerts (server/alerts) are events too, so they reach every sink and stay in the trail.
ALERT_EXPIRY: Final = "alert:expiry"
ALERT_DENIAL_SPIKE: Final = "alert:denial_spike"
ALERT_VERIFY_FAILED: Final = "alert:verify_failed"
ALERT_SINK_LAG: Final = "alert:sink_lag"
ALERT_REFRESH_FAILED: Final = "alert:refresh_failed"

ALLOWED: Final = "allowed"
DENIED: Final = "denied"
OK: Final = "ok"
ERROR: Final = "error"
OUTCOMES: Final[frozenset[str]] = frozenset({ALLOWED, DENIED, OK, ERROR})

REASON_CAP: Final = 1024
URL_CAP: Final = 4096
DETAIL_TEXT_CAP: Final = 1024
TRUNCATED: Final = "...[truncated]"
REDACTED: Final = "[redacted]"

# Column widths of ``audit_events``: text longer than these would fail the insert on PostgreSQL.
_CAPS: Final[dict[str, int]] = {
    "event": 64,
    "outcome": 16,
    "code": 64,
    "app_id": 36,
    "key_id": 36,
    "caller": 255,
    "source_ip": 64,
    "portal_user": 320,
    "grant_id": 36,
    "secret_id": 36,
    "method": 16,
    "url": URL_CAP,
    "reason": REASON_CAP,
    "mode": 16,
    "request_id": 64,
}

# Anything that can break a line, move the cursor, reorder displayed text or be refused by the
# database: C0, DEL, C1, line/paragraph separators, bidi marks/overrides/isolates, lone surrogates.
_CONTROLS = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
_CONTROL = re.compile(f"[{_CONTROLS}]")
# The backslash is escaped too, so an escape sequence in the trail always means the vault wrote it.
_UNSAFE = re.compile(f"[\\\\{_CONTROLS}]")


def _escape(char: str) -> str:
    if not _UNSAFE.match(char):
        return char
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean_text(value: str, cap: int = REASON_CAP) -> str:
    """Escape control and display-altering characters, then cap the length (with a marker).

    Only the first ``cap + 1`` characters are looked at (each yields at least one), so a megabyte
    of reason costs no more than a kilobyte. The result never exceeds ``cap`` and never ends in
    half an escape.
    """
    if cap < len(TRUNCATED):
        raise ValueError("cap too small for the truncation marker")
    if len(value) <= cap and not _UNSAFE.search(value):
        return value
    pieces = [_escape(char) for char in value[: cap + 1]]
    if sum(map(len, pieces)) <= cap:
        return "".join(pieces)
    kept: list[str] = []
    room = cap - len(TRUNCATED)
    for piece in pieces:
        room -= len(piece)
        if room < 0:
            break
        kept.append(piece)
    kept.append(TRUNCATED)
    return "".join(kept)


def redact_url(url: str, params: Iterable[str]) -> str:
    """The URL with the values of ``params`` (injected query credentials) replaced."""
    names = {name.lower() for name in params}
    if not names:
        return url
    parts = urlsplit(url)
    query = [
        (key, REDACTED if key.lower() in names else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]")))


def clean_details(value: Any, *, depth: int = 0) -> Any:
    """A JSON-safe copy of ``details``: plain dicts, lists, text, numbers, booleans and None.

    Only exact ``dict``/``list``/``tuple`` are walked: any other mapping (a ``Credential`` is one)
    is refused rather than copied, so a secret cannot slip into the trail as a "detail".
    """
    if depth > 8:
        raise ValueError("audit details nested too deeply")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_text(value, DETAIL_TEXT_CAP)
    if type(value) is dict:
        return {
            clean_text(str(key), 128): clean_details(item, depth=depth + 1)
            for key, item in value.items()
        }
    if type(value) in (list, tuple):
        return [clean_details(item, depth=depth + 1) for item in value]
    raise TypeError(f"audit details cannot hold a {type(value).__name__}")


_NUMBERS: Final = ("upstream_status", "latency_ms")


_CAP_LIMITS: Final = tuple(_CAPS.values())


def _clean_texts(values: tuple[Any, ...], unsafe: re.Pattern[str] = _CONTROL) -> bool:
    """Whether ``values`` (one per `_CAPS` field, None allowed) are text that needs no cleaning.

    Every event of every request passes here, so the checks run in C: one search over all the
    text (a joined string holds a control character exactly when a piece does), and the
    lengths compared pairwise with the caps.
    """
    texts = ["" if value is None else value for value in values]
    try:
        joined = "".join(texts)
    except TypeError:  # something other than text
        return False
    if unsafe.search(joined):
        return False
    return not any(map(operator.gt, map(len, texts), _CAP_LIMITS))


def _fits_int32(value: object) -> bool:
    return value is None or (type(value) is int and -(2**31) < value < 2**31)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event before it is chained: the columns of ``audit_events`` minus seq and the hashes."""

    id: str
    ts: datetime
    event: str
    outcome: str
    code: str | None = None
    app_id: str | None = None
    key_id: str | None = None
    caller: str | None = None
    source_ip: str | None = None
    portal_user: str | None = None
    grant_id: str | None = None
    secret_id: str | None = None
    method: str | None = None
    url: str | None = None
    reason: str | None = None
    mode: str | None = None
    upstream_status: int | None = None
    latency_ms: int | None = None
    request_id: str | None = None
    details: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("audit ts must be timezone-aware")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {self.outcome!r}")
        if not self.event:
            raise ValueError("audit event name is empty")
        if not _clean_texts(_CAPPED_VALUES(self)):
            self._refuse_text()
        if not (_fits_int32(self.upstream_status) and _fits_int32(self.latency_ms)):
            name = "latency_ms" if _fits_int32(self.upstream_status) else "upstream_status"
            raise ValueError(f"audit field {name} must be a 32-bit int")

    def _refuse_text(self) -> None:
        for name, cap in _CAPS.items():
            text = getattr(self, name)
            if text is None:
                continue
            if not isinstance(text, str) or len(text) > cap or _CONTROL.search(text):
                raise ValueError(f"audit field {name} is not clean text of at most {cap} chars")

    @classmethod
    def new(
        cls, *, event: str, outcome: str, now: datetime | None = None, **fields: Any
    ) -> AuditEvent:
        """A fresh event: a new id, ``ts`` from ``now`` (or the clock), every text field cleaned."""
        texts = tuple(map(fields.get, _CAPS))
        if not _clean_texts(texts, unsafe=_UNSAFE):
            for name, value in zip(_CAPS, texts, strict=True):
                if value is not None:
                    fields[name] = clean_text(str(value), _CAPS[name])
        for name in _NUMBERS:
            # Numbers can come from a client (an SDK's outcome report): one that cannot be
            # stored is left out rather than turned into a 500.
            if not _fits_int32(fields.get(name)):
                fields[name] = None
        if fields.get("details") is not None:
            fields["details"] = clean_details(fields["details"])
        ts = (now or datetime.now(UTC)).astimezone(UTC)
        return cls(id=new_event_id(), ts=ts, event=event, outcome=outcome, **fields)

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(EVENT_FIELDS, _VALUES(self), strict=True))

    def values(self) -> tuple[Any, ...]:
        """Every field's value in EVENT_FIELDS order (the column order the writer inserts)."""
        return _VALUES(self)


EVENT_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in dataclasses.fields(AuditEvent))
_VALUES: Final = operator.attrgetter(*EVENT_FIELDS)
_CAPPED_VALUES: Final = operator.attrgetter(*_CAPS)


def new_event_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID as text: an audit event's id.

    The unique index on ``audit_events.id`` then grows at its end, as the table does: a batch of
    events dirties the index's last page instead of one random page per event (a write of the
    page to the WAL, and a read when it is not cached). Measured on the transparent proxy at
    concurrency 32, one worker: 8.2 page writes a request with random ids. The 74 bits after the
    millisecond are random, so ids stay unguessable; the time they show is the event's own.
    """
    return _uuid_text((_time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10), 7)


def new_id() -> str:
    """A random (version 4) UUID as text: what ``str(uuid.uuid4())`` gives, at half the cost."""
    return _uuid_text(os.urandom(16), 4)


def _uuid_text(sixteen: bytes, version: int) -> str:
    """``sixteen`` bytes as an RFC 9562 UUID of ``version``, in canonical text."""
    raw = bytearray(sixteen)
    raw[6] = raw[6] & 0x0F | version << 4
    raw[8] = raw[8] & 0x3F | 0x80
    hexa = raw.hex()
    return f"{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}"
