"""``/v1/audit/sinks``: where the audit trail is streamed, and how far each sink has got."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from vaultgate.server import etags
from vaultgate.server.api.deps import AdminActor, Rt
from vaultgate.server.sinks import SinkCreate, SinkUpdate
from vaultgate.server.sinks.store import settings_etag

router = APIRouter(prefix="/v1/audit/sinks", tags=["audit sinks"])


@router.post("", status_code=201)
def create_sink(body: SinkCreate, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return rt.sinks.create(body, actor)


@router.get("")
def list_sinks(rt: Rt, _: AdminActor) -> dict[str, Any]:
    return {"items": rt.sinks.list()}


@router.get("/{ref}")
def get_sink(ref: str, rt: Rt, _: AdminActor, response: Response) -> dict[str, Any]:
    sink = rt.sinks.find(ref)
    response.headers["ETag"] = settings_etag(sink)
    return rt.sinks.public(sink)


@router.patch("/{ref}")
def update_sink(
    ref: str,
    body: SinkUpdate,
    rt: Rt,
    actor: AdminActor,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    """With ``If-Match: <the ETag of a GET>``, settings changed since that read are a 412 and
    nothing is written (the CLI's ``sinks set --config`` merges into what it read)."""
    expected = etags.if_match(request.headers.getlist("if-match"))
    sink = rt.sinks.update(ref, body, actor, expected=expected)
    response.headers["ETag"] = settings_etag(sink)  # the answer and its tag from one read
    return rt.sinks.public(sink)


@router.delete("/{ref}", status_code=204)
def delete_sink(ref: str, rt: Rt, actor: AdminActor) -> Response:
    rt.sinks.delete(ref, actor)
    return Response(status_code=204)
