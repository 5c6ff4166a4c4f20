import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from vaultgate.server.audit.events import (
    ALLOWED,
    DENIED,
    GRANT_DENY,
    GRANT_OUTCOME,
    GRANT_USE,
    OK,
    AuditEvent,
)
from vaultgate.server.audit.queries import (
    CHUNK,
    encode_cursor,
    event_to_dict,
    export_jsonl,
    list_events,
    verify_chain,
)
from vaultgate.server.audit.writer import AuditWriter
from vaultgate.server.errors import InvalidInput, Unprocessable

T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
GRANT_A = "aaaaaaaa-0000-4000-8000-000000000001"
GRANT_B = "bbbbbbbb-0000-4000-8000-000000000002"


def _events() -> list[AuditEvent]:
    """12 events, one minute apart: grants A/B alternate, every third is a denial."""
    events = []
    for i in range(12):
        denied = i % 3 == 2
        events.append(
            AuditEvent.new(
                event=GRANT_DENY if denied else GRANT_USE,
                outcome=DENIED if denied else ALLOWED,
                now=T0 + timedelta(minutes=i),
                grant_id=GRANT_A if i % 2 == 0 else GRANT_B,
                app_id="app-1" if i < 6 else "app-2",
                caller="agent-x" if i < 4 else "agent-y",
                reason=f"call {i}",
            )
        )
    return events


@pytest.fixture
def stored(engine: Engine, audit_key: bytes) -> list[AuditEvent]:
    events = _events()
    writer = AuditWriter(engine, audit_key)
    writer.start()
    for event in events:
        writer.submit(event)
    writer.stop()
    return events


def _reasons(items: list[dict[str, object]]) -> list[object]:
    return [item["reason"] for item in items]


def test_list_is_newest_first_and_json_ready(engine: Engine, stored: list[AuditEvent]) -> None:
    items, cursor = list_events(engine)
    assert cursor is None
    assert [item["seq"] for item in items] == list(range(12, 0, -1))
    assert items[0]["ts"] == "2025-05-01T09:11:00.000000+00:00"
    assert items[0]["id"] == stored[-1].id
    json.dumps(items)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"grant_id": GRANT_A}, [10, 8, 6, 4, 2, 0]),
        ({"app_id": "app-2"}, [11, 10, 9, 8, 7, 6]),
        ({"caller": "agent-x"}, [3, 2, 1, 0]),
        ({"event": GRANT_DENY}, [11, 8, 5, 2]),
        ({"outcome": ALLOWED, "grant_id": GRANT_B}, [9, 7, 3, 1]),
        ({"since": T0 + timedelta(minutes=9)}, [11, 10, 9]),
        ({"until": T0 + timedelta(minutes=2)}, [1, 0]),
        ({"since": T0 + timedelta(minutes=3), "until": T0 + timedelta(minutes=5)}, [4, 3]),
        ({"caller": "nobody"}, []),
    ],
)
def test_list_filters(
    engine: Engine, stored: list[AuditEvent], filters: dict[str, object], expected: list[int]
) -> None:
    items, _ = list_events(engine, **filters)  # type: ignore[arg-type]
    assert _reasons(items) == [f"call {i}" for i in expected]


def test_pagination_walks_every_event_once(engine: Engine, stored: list[AuditEvent]) -> None:
    seen: list[object] = []
    cursor: str | None = None
    pages = 0
    while True:
        items, cursor = list_events(engine, limit=5, cursor=cursor)
        seen.extend(item["seq"] for item in items)
        pages += 1
        if cursor is None:
            break
    assert seen == list(range(12, 0, -1))
    assert pages == 3


def test_pagination_keeps_the_filters(engine: Engine, stored: list[AuditEvent]) -> None:
    first, cursor = list_events(engine, grant_id=GRANT_A, limit=4)
    assert cursor is not None
    rest, end = list_events(engine, grant_id=GRANT_A, limit=4, cursor=cursor)
    assert end is None
    assert _reasons(first + rest) == [f"call {i}" for i in (10, 8, 6, 4, 2, 0)]


def test_an_exact_last_page_has_no_next_cursor(engine: Engine, stored: list[AuditEvent]) -> None:
    items, cursor = list_events(engine, limit=12)
    assert len(items) == 12
    assert cursor is None


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_limit_out_of_range_is_422(engine: Engine, limit: int) -> None:
    with pytest.raises(Unprocessable) as info:
        list_events(engine, limit=limit)
    assert info.value.field == "limit"
    assert info.value.status == 422


@pytest.mark.parametrize("limit", [1, 1000])
def test_limit_bounds_are_accepted(engine: Engine, limit: int) -> None:
    assert list_events(engine, limit=limit) == ([], None)


@pytest.mark.parametrize("cursor", ["", "!!!", "czo", "eDox", "czotMQ", "czoxZQ", "ä", "x" * 5000])
def test_a_malformed_cursor_is_400(engine: Engine, cursor: str) -> None:
    with pytest.raises(InvalidInput) as info:
        list_events(engine, cursor=cursor)
    assert info.value.field == "cursor"
    assert info.value.status == 400


def test_a_well_formed_cursor_past_the_start_is_an_empty_page(engine: Engine) -> None:
    assert list_events(engine, cursor=encode_cursor(1)) == ([], None)


def test_naive_times_and_unknown_outcomes_are_422(engine: Engine) -> None:
    with pytest.raises(Unprocessable) as info:
        list_events(engine, since=datetime(2025, 1, 1))
    assert info.value.field == "since"
    with pytest.raises(Unprocessable) as info:
        list_events(engine, outcome="maybe")
    assert info.value.field == "outcome"


def test_export_is_oldest_first_one_object_per_line(
    engine: Engine, stored: list[AuditEvent]
) -> None:
    lines = list(export_jsonl(engine))
    assert all("\n" not in line for line in lines)
    records = [json.loads(line) for line in lines]
    assert [record["seq"] for record in records] == list(range(1, 13))
    assert [record["id"] for record in records] == [event.id for event in stored]


def test_export_applies_filters(engine: Engine, stored: list[AuditEvent]) -> None:
    records = [json.loads(line) for line in export_jsonl(engine, event=GRANT_DENY)]
    assert [record["reason"] for record in records] == ["call 2", "call 5", "call 8", "call 11"]


def test_export_and_verify_cross_chunk_boundaries(engine: Engine, audit_key: bytes) -> None:
    writer = AuditWriter(engine, audit_key)
    writer.start()
    for i in range(CHUNK + 5):
        writer.submit(AuditEvent.new(event=GRANT_OUTCOME, outcome=OK, latency_ms=i))
    writer.stop()
    latencies = [json.loads(line)["latency_ms"] for line in export_jsonl(engine)]
    assert latencies == list(range(CHUNK + 5))
    report = verify_chain(engine, audit_key)
    assert report.ok
    assert report.events == CHUNK + 5


def test_event_to_dict_takes_a_plain_mapping() -> None:
    event = AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, now=T0)
    data = event_to_dict({**event.as_dict(), "seq": 1, "hash": "h"})
    assert data["ts"] == "2025-05-01T09:00:00.000000+00:00"
    assert data["seq"] == 1
    assert data["mac"] is None
