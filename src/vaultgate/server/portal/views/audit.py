"""The Audit tab: a filtered, paginated trail, one event's detail, verification and export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from vaultgate.server.api.deps import runtime
from vaultgate.server.audit import events, queries
from vaultgate.server.errors import NotFound, Unprocessable, VaultError
from vaultgate.server.portal.pages import render
from vaultgate.server.portal.routing import PortalRoute, User, context

router = APIRouter(prefix="/portal", route_class=PortalRoute)
PAGE = 50
TEXT_FILTERS = ("grant_id", "app_id", "caller", "event", "outcome")
EVENT_NAMES = sorted(
    v for k, v in vars(events).items() if k.isupper() and isinstance(v, str) and ":" in v
)


def _time(raw: str, field: str) -> datetime | None:
    """A time from the form; the browser's ``datetime-local`` has no zone, so it reads as UTC."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Unprocessable(f"{field}: not a date and time", field=field) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _filters(request: Request) -> tuple[dict[str, str], dict[str, Any]]:
    """The raw filter values (to redisplay and to link) and the parsed ones for the query."""
    raw = {k: request.query_params.get(k, "").strip() for k in (*TEXT_FILTERS, "since", "until")}
    parsed: dict[str, Any] = {k: raw[k] or None for k in TEXT_FILTERS}
    parsed["since"] = _time(raw["since"], "since")
    parsed["until"] = _time(raw["until"], "until")
    return raw, parsed


@router.get("/audit", include_in_schema=False)
def trail(request: Request, user: User, cursor: str | None = None) -> Response:
    rt = runtime(request)
    raw: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    next_cursor, errors = None, {}
    try:
        raw, parsed = _filters(request)
        items, next_cursor = queries.list_events(rt.engine, limit=PAGE, cursor=cursor, **parsed)
    except VaultError as exc:
        errors = {exc.field or "": exc.message}
        raw = {k: request.query_params.get(k, "") for k in (*TEXT_FILTERS, "since", "until")}
    query = urlencode({k: v for k, v in raw.items() if v})
    ctx = context(
        request,
        "audit",
        title="Audit trail",
        items=items,
        values=raw,
        errors=errors,
        query=query,
        event_names=EVENT_NAMES,
        outcomes=sorted(events.OUTCOMES),
        apps=rt.keys.list_apps(),
        next_link=f"?{query}&cursor={next_cursor}" if next_cursor else None,
    )
    return render("audit.html", ctx, status=422 if errors else 200)


@router.get("/audit/events/{seq}", include_in_schema=False)
def event_detail(request: Request, seq: int, user: User) -> Response:
    rt = runtime(request)
    # The page that starts just above ``seq`` begins with ``seq`` itself, when it exists.
    items, _ = queries.list_events(rt.engine, limit=1, cursor=queries.encode_cursor(seq + 1))
    if not items or items[0]["seq"] != seq:
        raise NotFound(f"there is no audit event {seq}")
    item = items[0]
    details = (
        json.dumps(item.get("details"), indent=2, sort_keys=True)
        if item.get("details") is not None
        else None
    )
    return render(
        "audit_event.html",
        context(request, "audit", title=f"Audit event {seq}", item=item, details=details),
    )


@router.get("/audit/verify", include_in_schema=False)
def verify(request: Request, user: User) -> Response:
    rt = runtime(request)
    report = queries.verify_chain(rt.engine, rt.audit_key).as_dict()
    return render(
        "audit_verify.html", context(request, "audit", title="Audit chain", report=report)
    )


@router.get("/audit/export", include_in_schema=False)
def export(request: Request, user: User) -> Response:
    _, parsed = _filters(request)
    lines = queries.export_jsonl(runtime(request).engine, **parsed)
    # The generator checks its filters on the first step: take it here, so a bad filter is an
    # error page rather than a stream cut short.
    first = next(lines, None)
    stamp = runtime(request).clock().strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        _with_newlines(first, lines),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="vaultgate-audit-{stamp}.jsonl"'},
    )


def _with_newlines(first: str | None, lines: Iterator[str]) -> Iterator[str]:
    if first is None:
        return
    yield first + "\n"
    for line in lines:
        yield line + "\n"
