"""Deciding approvals on the management API: the queue, one request, approve, deny; groups.

An admin key is a machine's credential, not a person, and a gate must count a person: so every
decision names its ``approver``, a portal user, who must be eligible under the grant's rule and
may not be the one who asked. The audit record keeps both the key that called and the person.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from vaultgate.server.api.deps import AdminActor, Rt
from vaultgate.server.policy.approval import ApproverEmail, GroupName

router = APIRouter(prefix="/v1", tags=["approvals"])


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approver: str = Field(min_length=3, max_length=320)
    comment: str | None = Field(default=None, max_length=2000)


class GroupMembers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    members: list[ApproverEmail] = Field(max_length=256)


@router.get("/approvals")
async def list_approvals(
    rt: Rt,
    _: AdminActor,
    status: str | None = None,
    grant_id: str | None = None,
    app_id: str | None = None,
    limit: int = Query(default=100),
) -> dict[str, Any]:
    items = await anyio.to_thread.run_sync(
        lambda: rt.approvals.queue(status=status, grant_id=grant_id, app_id=app_id, limit=limit)
    )
    return {"items": items}


@router.get("/approvals/{approval_id}")
async def get_approval(approval_id: str, rt: Rt, _: AdminActor) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(rt.approvals.show, approval_id)


@router.post("/approvals/{approval_id}/approve")
async def approve(approval_id: str, body: Decision, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return await rt.approvals.decide(
        approval_id, body.approver, body.comment, approve=True, actor=actor
    )


@router.post("/approvals/{approval_id}/deny")
async def deny(approval_id: str, body: Decision, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return await rt.approvals.decide(
        approval_id, body.approver, body.comment, approve=False, actor=actor
    )


@router.get("/approver-groups")
async def list_groups(rt: Rt, _: AdminActor) -> dict[str, Any]:
    return {"items": await anyio.to_thread.run_sync(rt.approvals.groups.all)}


@router.put("/approver-groups/{name}")
def set_group(name: GroupName, body: GroupMembers, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return rt.approvals.groups.set(name, list(dict.fromkeys(body.members)), actor)
