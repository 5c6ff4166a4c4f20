"""Reading the trail: filtered listing with keyset pagination, JSON-lines export, verification.

Everything here reads in bounded chunks ordered by ``seq`` (the primary key), so a trail of
millions of events is listed, exported and verified without holding it in memory.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.audit.chain import HEAD_KEY, Head, VerifyReport, verify
from vaultgate.server.audit.events import OUTCOMES
from vaultgate.server.errors import InvalidInput, Unprocessable
from vaultgate.server.storage.engine import reading
from vaultgate.server.storage.tables import audit_events, meta, secrets

MAX_LIMIT: Final = 1000
CHUNK: Final = 1000
_CURSOR_PREFIX: Final = "s:"


def event_to_dict(row: Mapping[str, Any] | sa.Row[Any]) -> dict[str, Any]:
    """A stored event as JSON-ready values (``ts`` as ISO 8601 UTC with microseconds)."""
    data = dict(row._mapping) if isinstance(row, sa.Row) else dict(row)
    ts = data.get("ts")
    if isinstance(ts, datetime):
        data["ts"] = ts.astimezone(UTC).isoformat(timespec="microseconds")
    return {column.name: data.get(column.name) for column in audit_events.columns}


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The seq a cursor continues below; ``InvalidInput(field="cursor")`` when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX) or not text[2:].isdigit():
            raise ValueError(text)
        return int(text[2:])
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidInput("cursor is not one this server issued", field="cursor") from None


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise Unprocessable(f"{field} must carry a timezone", field=field)
    return value


def _filters(
    *,
    grant_id: str | None = None,
    app_id: str | None = None,
    caller: str | None = None,
    event: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    run_id: str | None = None,
    thread_id: str | None = None,
    tool: str | None = None,
    agent: str | None = None,
    provider: str | None = None,
) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses for the public filters: ``since`` inclusive, ``until`` exclusive."""
    if outcome is not None and outcome not in OUTCOMES:
        raise Unprocessable(
            f"outcome must be one of {', '.join(sorted(OUTCOMES))}", field="outcome"
        )
    col = audit_events.c
    clauses = [
        column == value
        for column, value in (
            (col.grant_id, grant_id),
            (col.app_id, app_id),
            (col.caller, caller),
            (col.event, event),
            (col.outcome, outcome),
        )
        if value is not None
    ]
    context = {"run_id": run_id, "thread_id": thread_id, "tool": tool}
    clauses.extend(
        col.details["context"][key].as_string() == value
        for key, value in context.items()
        if value is not None
    )
    if agent is not None:  # the verified agent (its key's), never the asserted caller
        clauses.append(col.details["agent"]["name"].as_string() == agent)
    if provider is not None:
        # Events name the secret, not its provider: the provider's secrets, by subquery.
        of_provider = sa.select(secrets.c.id).where(secrets.c.provider == provider)
        clauses.append(col.secret_id.in_(of_provider))
    if (start := _aware(since, "since")) is not None:
        clauses.append(col.ts >= start)
    if (end := _aware(until, "until")) is not None:
        clauses.append(col.ts < end)
    return clauses


def list_events(
    engine: Engine,
    *,
    grant_id: str | None = None,
    app_id: str | None = None,
    caller: str | None = None,
    event: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    run_id: str | None = None,
    thread_id: str | None = None,
    tool: str | None = None,
    agent: str | None = None,
    provider: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, newest first, and the cursor of the next page (None on the last)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Unprocessable(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    clauses = _filters(
        grant_id=grant_id,
        app_id=app_id,
        caller=caller,
        event=event,
        outcome=outcome,
        since=since,
        until=until,
        run_id=run_id,
        thread_id=thread_id,
        tool=tool,
        agent=agent,
        provider=provider,
    )
    if cursor is not None:
        clauses.append(audit_events.c.seq < decode_cursor(cursor))
    query = (
        sa.select(audit_events).where(*clauses).order_by(audit_events.c.seq.desc()).limit(limit + 1)
    )
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    items = [event_to_dict(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1]["seq"]) if len(rows) > limit else None
    return items, next_cursor


def _ascending(
    engine: Engine, clauses: list[sa.ColumnElement[bool]], *, upto: int | None = None
) -> Iterator[sa.Row[Any]]:
    """Matching rows oldest first, fetched CHUNK at a time by keyset (no long transaction)."""
    after = 0
    while True:
        where = [*clauses, audit_events.c.seq > after]
        if upto is not None:
            where.append(audit_events.c.seq <= upto)
        query = sa.select(audit_events).where(*where).order_by(audit_events.c.seq).limit(CHUNK)
        with reading(engine) as conn:
            rows = conn.execute(query).all()
        yield from rows
        if len(rows) < CHUNK:
            return
        after = rows[-1].seq


def export_jsonl(engine: Engine, **filters: Any) -> Iterator[str]:
    """The matching events oldest first, one JSON object per item (the caller adds newlines).

    Not a generator itself: the filters are checked here, when it is called, so a bad one is a
    422 before the response starts, not a 200 whose stream then breaks.
    """
    clauses = _filters(**filters)
    return _lines(engine, clauses)


def _lines(engine: Engine, clauses: list[sa.ColumnElement[bool]]) -> Iterator[str]:
    for row in _ascending(engine, clauses):
        yield json.dumps(event_to_dict(row), sort_keys=True, separators=(",", ":"))


def read_head(engine: Engine) -> Head | None:
    """The recorded chain head; None when absent. A malformed head reads as an unsigned one."""
    with reading(engine) as conn:
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == HEAD_KEY)).scalar()
    if value is None:
        return None
    try:
        return Head.parse(value)
    except ValueError:
        return Head(-1, "", "")


def verify_chain(engine: Engine, audit_key: bytes) -> VerifyReport:
    """Verify the whole trail up to the head read at the start (later events wait for next time)."""
    head = read_head(engine)
    # Bounded by an authentic head, a concurrent writer's new events cannot read as "past the
    # head"; an unsigned head bounds nothing, so then every row is checked.
    upto = head.seq if head is not None and head.is_authentic(audit_key) else None
    rows = (dict(row._mapping) for row in _ascending(engine, [], upto=upto))
    return verify(rows, audit_key, head=head)
