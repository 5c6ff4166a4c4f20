"""The hash chain, pure: canonical bytes, sealing an event into a row, and verifying rows.

Each row's ``hash`` is SHA-256 over its canonical form, which includes ``seq`` and ``prev_hash``,
so an edit, a removal or a reordering changes a hash that the next row no longer points at. The
``mac`` (HMAC-SHA256 under the audit key) stops someone with write access to the database from
recomputing hashes after an edit. The head (last seq and hash, also MACed) lives in
``meta.audit_head`` and is what exposes a truncated tail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from vaultgate.server.audit.events import EVENT_FIELDS, AuditEvent

GENESIS: Final = "0" * 64
HEAD_KEY: Final = "audit_head"
CHAINED_FIELDS: Final[tuple[str, ...]] = (*EVENT_FIELDS, "seq", "prev_hash")


def _timestamp(value: Any) -> Any:
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetime in an audit event")
    utc = value.astimezone(UTC)
    if utc.year < 1000:
        # strftime's %Y does not pad years below 1000 where isoformat does: keep the old bytes.
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # isoformat is the cheaper spelling of the same text (it ends in "+00:00" for UTC).
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def canonical(record: Mapping[str, Any]) -> bytes:
    """Sorted-key compact JSON of every chained field (missing ones count as null).

    ``ts`` is the only datetime column; it is written as ISO 8601 UTC with microseconds, the
    precision both databases keep, so a row read back hashes exactly as it was written.
    """
    body = {name: record.get(name) for name in CHAINED_FIELDS}
    body["ts"] = _timestamp(body["ts"])
    return _ENCODER.encode(body).encode()


def _canonical_values(values: Sequence[Any], seq: int, prev_hash: str) -> bytes:
    """`canonical` of an event given as its values in EVENT_FIELDS order (no mapping built)."""
    body = dict(zip(CHAINED_FIELDS, (*values, seq, prev_hash), strict=True))
    body["ts"] = _timestamp(body["ts"])
    return _ENCODER.encode(body).encode()


_ENCODER: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def event_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def event_mac(key: bytes, digest: str) -> str:
    # hmac.digest is the one-shot C path: the same MAC as hmac.new(...) at a fraction of the cost.
    return hmac.digest(key, digest.encode("ascii"), "sha256").hex()


def chain_values(values: Sequence[Any], *, seq: int, prev_hash: str, key: bytes) -> tuple[str, str]:
    """(hash, mac) of the event whose EVENT_FIELDS ``values`` are placed at ``seq``.

    The writer's path: it seals from `AuditEvent.values` without building a row mapping.
    """
    digest = hashlib.sha256(_canonical_values(values, seq, prev_hash)).hexdigest()
    return digest, event_mac(key, digest)


def seal(event: AuditEvent, *, seq: int, prev_hash: str, key: bytes) -> dict[str, Any]:
    """The full ``audit_events`` row for ``event`` placed at ``seq`` after ``prev_hash``."""
    values = event.values()
    digest, mac = chain_values(values, seq=seq, prev_hash=prev_hash, key=key)
    row = dict(zip(EVENT_FIELDS, values, strict=True))
    row.update(seq=seq, prev_hash=prev_hash, hash=digest, mac=mac)
    return row


@dataclass(frozen=True, slots=True)
class Head:
    """The chain's last event as recorded in ``meta``: seq 0 and GENESIS for an empty chain."""

    seq: int
    hash: str
    mac: str

    @classmethod
    def genesis(cls, key: bytes) -> Head:
        return cls.make(0, GENESIS, key)

    @classmethod
    def make(cls, seq: int, digest: str, key: bytes) -> Head:
        return cls(seq, digest, _head_mac(key, seq, digest))

    @classmethod
    def parse(cls, value: str) -> Head:
        """Read a stored head; ``ValueError`` when it is not one."""
        try:
            data = json.loads(value)
            head = cls(int(data["seq"]), str(data["hash"]), str(data["mac"]))
        except (TypeError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError("malformed audit head") from exc
        return head

    def dump(self) -> str:
        return json.dumps({"seq": self.seq, "hash": self.hash, "mac": self.mac}, sort_keys=True)

    def is_authentic(self, key: bytes) -> bool:
        return hmac.compare_digest(self.mac, _head_mac(key, self.seq, self.hash))


def _head_mac(key: bytes, seq: int, digest: str) -> str:
    # Domain-separated from event MACs so an event's mac can never pass as a head's.
    return hmac.digest(key, f"{HEAD_KEY}:{seq}:{digest}".encode(), "sha256").hex()


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a verification: ``first_bad_seq`` names where the chain first breaks."""

    ok: bool
    events: int
    head: str | None
    head_seq: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "head_seq": self.head_seq,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def _check_row(row: Mapping[str, Any], seq: int, prev: str, key: bytes) -> str | None:
    """The problem with ``row`` when it should be event ``seq`` following ``prev``, or None."""
    if row["seq"] != seq:
        return f"event {seq} is missing (the next stored event is {row['seq']})"
    if not hmac.compare_digest(event_hash(row), str(row["hash"])):
        return f"event {seq} was edited: its content does not match its hash"
    if not hmac.compare_digest(event_mac(key, str(row["hash"])), str(row["mac"])):
        return f"event {seq} has a hash not signed by the audit key"
    if row["prev_hash"] != prev:
        return f"event {seq} does not follow event {seq - 1}: one was removed or reordered"
    return None


def _check_head(head: Head | None, seq: int, digest: str, key: bytes) -> tuple[str, int] | None:
    """What is wrong with the recorded head after ``seq`` good events ending in ``digest``."""
    if head is None:
        return None if seq == 0 else ("the recorded chain head is missing", seq)
    if not head.is_authentic(key):
        return "the recorded chain head is not signed by the audit key", seq + 1
    if head.seq > seq:
        return f"events {seq + 1} to {head.seq} are missing from the end of the trail", seq + 1
    if head.seq < seq:
        return f"the trail goes past the recorded head (event {head.seq})", head.seq + 1
    if head.hash != digest:
        return f"event {seq} is not the event the head recorded", seq
    return None


def verify(rows: Iterable[Mapping[str, Any]], key: bytes, *, head: Head | None) -> VerifyReport:
    """Walk ``rows`` in seq order (streaming) and stop at the first break.

    ``head`` is the recorded ``meta.audit_head`` (None when absent). Rows past the head are the
    caller's to exclude when they may have been committed after the head was read.
    """
    seq, digest = 0, GENESIS
    for row in rows:
        problem = _check_row(row, seq + 1, digest, key)
        if problem is not None:
            return VerifyReport(False, seq, digest, seq, first_bad_seq=seq + 1, problem=problem)
        seq, digest = seq + 1, str(row["hash"])
    broken = _check_head(head, seq, digest, key)
    if broken is not None:
        problem, first_bad = broken
        return VerifyReport(False, seq, digest, seq, first_bad_seq=first_bad, problem=problem)
    return VerifyReport(True, seq, digest if seq else None, seq)
