import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from vaultgate.server.audit.chain import (
    GENESIS,
    Head,
    canonical,
    event_hash,
    event_mac,
    seal,
    verify,
)
from vaultgate.server.audit.events import ALLOWED, DENIED, GRANT_DENY, GRANT_USE, AuditEvent

KEY = b"k" * 32
NOW = datetime(2025, 3, 1, 12, 0, 0, 5, tzinfo=UTC)


def _chain(count: int, key: bytes = KEY) -> tuple[list[dict[str, Any]], Head]:
    rows, prev = [], GENESIS
    for i in range(count):
        event = AuditEvent.new(
            event=GRANT_USE if i % 2 else GRANT_DENY,
            outcome=ALLOWED if i % 2 else DENIED,
            now=NOW,
            reason=f"r{i}",
            details={"i": i},
        )
        row = seal(event, seq=i + 1, prev_hash=prev, key=key)
        rows.append(row)
        prev = row["hash"]
    return rows, Head.make(count, prev, key)


def test_canonical_is_sorted_compact_json_with_utc_microseconds() -> None:
    event = AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, now=NOW, reason="é")
    body = canonical({**event.as_dict(), "seq": 1, "prev_hash": GENESIS})
    data = json.loads(body)
    assert data["ts"] == "2025-03-01T12:00:00.000005Z"
    assert list(data) == sorted(data)
    assert b" " not in body
    assert set(data) >= {"seq", "prev_hash", "id", "reason", "details"}


def test_seal_hash_and_mac_are_sha256_and_hmac_of_the_canonical_form() -> None:
    event = AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, now=NOW)
    row = seal(event, seq=7, prev_hash=GENESIS, key=KEY)
    assert row["hash"] == hashlib.sha256(canonical(row)).hexdigest()
    assert row["mac"] == event_mac(KEY, row["hash"])
    assert row["mac"] != event_mac(b"other", row["hash"])


def test_hash_covers_seq_and_prev_hash() -> None:
    event = AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, now=NOW)
    base = seal(event, seq=1, prev_hash=GENESIS, key=KEY)
    assert seal(event, seq=2, prev_hash=GENESIS, key=KEY)["hash"] != base["hash"]
    assert seal(event, seq=1, prev_hash="1" * 64, key=KEY)["hash"] != base["hash"]


def test_verify_accepts_a_clean_chain_and_reports_its_head() -> None:
    rows, head = _chain(5)
    report = verify(rows, KEY, head=head)
    assert report.ok
    assert report.events == 5
    assert report.head == rows[-1]["hash"]
    assert report.first_bad_seq is None


def test_verify_accepts_an_empty_trail_without_head() -> None:
    report = verify([], KEY, head=None)
    assert report.ok
    assert report.events == 0


def test_verify_names_an_edited_event() -> None:
    rows, head = _chain(5)
    rows[2]["reason"] = "nothing to see"
    report = verify(rows, KEY, head=head)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.events == 2
    assert report.problem is not None
    assert "edited" in report.problem


def test_verify_names_a_hash_recomputed_without_the_key() -> None:
    rows, head = _chain(5)
    rows[3]["reason"] = "forged"
    rows[3]["hash"] = event_hash(rows[3])
    for later in rows[4:]:
        later["prev_hash"] = rows[3]["hash"]
        later["hash"] = event_hash(later)
    report = verify(rows, KEY, head=head)
    assert report.first_bad_seq == 4
    assert report.problem is not None
    assert "audit key" in report.problem


def test_verify_names_a_deleted_event() -> None:
    rows, head = _chain(5)
    del rows[1]
    report = verify(rows, KEY, head=head)
    assert report.first_bad_seq == 2
    assert report.problem is not None
    assert "missing" in report.problem


def test_verify_names_a_deleted_event_renumbered_to_close_the_gap() -> None:
    rows, head = _chain(5)
    del rows[1]
    for row in rows[1:]:
        row["seq"] -= 1
    report = verify(rows, KEY, head=head)
    assert report.first_bad_seq == 2


def test_verify_names_the_first_of_two_swapped_events() -> None:
    rows, head = _chain(5)
    rows[1], rows[2] = rows[2], rows[1]
    rows[1]["seq"], rows[2]["seq"] = 2, 3
    report = verify(rows, KEY, head=head)
    assert report.first_bad_seq == 2


def test_verify_with_a_wrong_key_fails_at_the_first_event() -> None:
    rows, head = _chain(3)
    report = verify(rows, b"wrong" * 8, head=head)
    assert report.first_bad_seq == 1


def test_verify_detects_a_truncated_tail_against_the_head() -> None:
    rows, head = _chain(5)
    report = verify(rows[:3], KEY, head=head)
    assert not report.ok
    assert report.events == 3
    assert report.first_bad_seq == 4
    assert report.problem is not None
    assert "4 to 5" in report.problem


def test_verify_detects_a_truncated_tail_with_a_head_rewritten_without_the_key() -> None:
    rows, _ = _chain(5)
    forged = Head(3, rows[2]["hash"], "0" * 64)
    report = verify(rows[:3], KEY, head=forged)
    assert not report.ok
    assert report.first_bad_seq == 4


def test_verify_detects_a_missing_head_when_events_exist() -> None:
    rows, _ = _chain(2)
    assert not verify(rows, KEY, head=None).ok


def test_verify_detects_events_past_the_head() -> None:
    rows, _ = _chain(4)
    stale = Head.make(2, rows[1]["hash"], KEY)
    report = verify(rows, KEY, head=stale)
    assert not report.ok
    assert report.first_bad_seq == 3


def test_head_round_trips_and_refuses_garbage() -> None:
    head = Head.make(9, "a" * 64, KEY)
    assert Head.parse(head.dump()) == head
    assert head.is_authentic(KEY)
    assert not dataclasses.replace(head, seq=10).is_authentic(KEY)
    for garbage in ("", "{}", "[1]", '{"seq": "x", "hash": 1, "mac": 2}'):
        with pytest.raises(ValueError):
            Head.parse(garbage)


def test_report_as_dict_carries_the_api_fields() -> None:
    rows, head = _chain(1)
    data = verify(rows, KEY, head=head).as_dict()
    assert {"ok": True, "events": 1, "head": rows[0]["hash"]}.items() <= data.items()
