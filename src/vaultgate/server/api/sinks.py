"""``/v1/audit/sinks``: where the audit trail is streamed, and how far each sink has got."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from vaultgate.server.api.deps import AdminActor, Rt
from vaultgate.server.sinks import SinkCreate, SinkUpdate

router = APIRouter(prefix="/v1/audit/sinks", tags=["audit sinks"])


@router.post("", status_code=201)
def create_sink(body: SinkCreate, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return rt.sinks.create(body, actor)


@router.get("")
def list_sinks(rt: Rt, _: AdminActor) -> dict[str, Any]:
    return {"items": rt.sinks.list()}


@router.get("/{ref}")
def get_sink(ref: str, rt: Rt, _: AdminActor) -> dict[str, Any]:
    return rt.sinks.public(rt.sinks.find(ref))


@router.patch("/{ref}")
def update_sink(ref: str, body: SinkUpdate, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return rt.sinks.update(ref, body, actor)


@router.delete("/{ref}", status_code=204)
def delete_sink(ref: str, rt: Rt, actor: AdminActor) -> Response:
    rt.sinks.delete(ref, actor)
    return Response(status_code=204)
