"""The Approvals tab: the queue of held calls, one call to decide, and the decided history.

The signed-in portal user is the approver: the service checks they may decide this call and
did not ask for it, exactly as on the management API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.server.api.deps import runtime
from vaultgate.server.errors import VaultError
from vaultgate.server.portal.pages import render
from vaultgate.server.portal.routing import Form, PortalActor, PortalRoute, User, context, see_other

router = APIRouter(prefix="/portal", route_class=PortalRoute)
HISTORY = 50


def _with_path(item: dict[str, Any]) -> dict[str, Any]:
    held = item.get("request")
    item["path"] = urlsplit(held["url"]).path if held else None
    return item


@router.get("/approvals", include_in_schema=False)
async def queue(request: Request, user: User) -> Response:
    service = runtime(request).approvals

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        waiting = service.queue(status="pending", grant_id=None, app_id=None, limit=200)
        recent = service.queue(status=None, grant_id=None, app_id=None, limit=HISTORY)
        return waiting, [a for a in recent if a["status"] != "pending"]

    waiting, decided = await anyio.to_thread.run_sync(read)
    ctx = context(
        request,
        "approvals",
        title="Approvals",
        waiting=[_with_path(a) for a in waiting],
        decided=decided,
    )
    return render("approvals.html", ctx)


async def _page(request: Request, approval_id: str, **extra: Any) -> Response:
    approval = await anyio.to_thread.run_sync(runtime(request).approvals.show, approval_id)
    flags = {name: request.query_params.get(name) == "1" for name in ("approved", "denied")}
    ctx = context(
        request,
        "approvals",
        title=f"{approval['method']} {approval['host']}",
        approval=_with_path(approval),
        decision_error=None,
        **flags,
    )
    ctx.update(extra)
    return render("approval.html", ctx, status=extra.get("status", 200))


@router.get("/approvals/{approval_id}", include_in_schema=False)
async def show(request: Request, approval_id: str, user: User) -> Response:
    return await _page(request, approval_id)


async def _decide(
    request: Request, approval_id: str, actor: PortalActor, form: Form, *, approve: bool
) -> Response:
    comment = form.get("comment") or None
    try:
        await runtime(request).approvals.decide(
            approval_id, str(actor.portal_user), comment, approve=approve, actor=actor
        )
    except VaultError as exc:
        return await _page(request, approval_id, decision_error=exc.message, status=exc.status)
    done = "approved" if approve else "denied"
    return see_other(f"/portal/approvals/{quote(approval_id)}?{done}=1")


@router.post("/approvals/{approval_id}/approve", include_in_schema=False)
async def approve(request: Request, approval_id: str, actor: PortalActor, form: Form) -> Response:
    return await _decide(request, approval_id, actor, form, approve=True)


@router.post("/approvals/{approval_id}/deny", include_in_schema=False)
async def deny(request: Request, approval_id: str, actor: PortalActor, form: Form) -> Response:
    return await _decide(request, approval_id, actor, form, approve=False)
