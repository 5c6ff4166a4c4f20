"""The management API of DESIGN 4.3: apps, keys, secrets, grants, audit, providers.

Handlers are sync on purpose: the services do blocking database work, which FastAPI runs in its
thread pool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.from_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from vaultgate.server import etags
from vaultgate.server.api.deps import AdminActor, Rt
from vaultgate.server.audit import queries, tabular
from vaultgate.server.auth import app_keys
from vaultgate.server.auth.services import parse_expiry
from vaultgate.server.secrets.grants import policy_etag
from vaultgate.server.secrets.models import (
    AppCreate,
    GrantClone,
    GrantUpdate,
    KeyCreate,
    SecretCreate,
    SecretRotate,
)

router = APIRouter(prefix="/v1", tags=["management"])


@router.post("/apps", status_code=201)
def create_app(body: AppCreate, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return rt.keys.create_app(body.name, actor)


@router.get("/apps")
def list_apps(rt: Rt, _: AdminActor) -> dict[str, Any]:
    return {"items": rt.keys.list_apps()}


@router.get("/apps/{app_id}")
def get_app(app_id: str, rt: Rt, _: AdminActor) -> dict[str, Any]:
    return rt.keys.get_app(app_id)


@router.post("/apps/{app_id}/keys", status_code=201)
def create_key(app_id: str, body: KeyCreate, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    expires_at = parse_expiry(body.expires_at, rt.clock())
    limits = body.model_dump(include=set(app_keys.LIMITS))
    return app_keys.create_app_key(rt.keys, app_id, body.name, expires_at, limits, actor)


@router.get("/apps/{app_id}/keys")
def list_keys(app_id: str, rt: Rt, _: AdminActor) -> dict[str, Any]:
    return {"items": app_keys.list_app_keys(rt.engine, rt.keys, app_id)}


@router.post("/admin-keys", status_code=201)
def create_admin_key(body: KeyCreate, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    expires_at = parse_expiry(body.expires_at, rt.clock())
    plaintext, meta = rt.keys.create_key("admin", body.name, actor, expires_at=expires_at)
    return {**meta, "api_key": plaintext}


@router.get("/admin-keys")
def list_admin_keys(rt: Rt, _: AdminActor) -> dict[str, Any]:
    return {"items": rt.keys.list_admin_keys()}


@router.delete("/admin-keys/{key_id}", status_code=204)
def revoke_admin_key(key_id: str, rt: Rt, actor: AdminActor) -> Response:
    rt.keys.get_admin_key(key_id)  # an app key's id is not an admin key: 404, nothing revoked
    rt.keys.revoke_key(key_id, actor)
    return Response(status_code=204)


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(key_id: str, rt: Rt, actor: AdminActor) -> Response:
    rt.keys.revoke_key(key_id, actor)
    return Response(status_code=204)


@router.post("/secrets", status_code=201)
def create_secret(body: SecretCreate, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return rt.secrets.create(body, actor)


@router.get("/secrets")
def list_secrets(rt: Rt, _: AdminActor, app_id: str | None = None) -> dict[str, Any]:
    return {"items": rt.secrets.list(app_id)}


@router.get("/secrets/{secret_id}")
def get_secret(secret_id: str, rt: Rt, _: AdminActor) -> dict[str, Any]:
    return rt.secrets.get(secret_id)


@router.post("/secrets/{secret_id}/rotate")
def rotate_secret(secret_id: str, body: SecretRotate, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return rt.secrets.rotate(secret_id, body.credential, actor)


@router.delete("/secrets/{secret_id}", status_code=204)
def delete_secret(secret_id: str, rt: Rt, actor: AdminActor) -> Response:
    rt.secrets.delete(secret_id, actor)
    return Response(status_code=204)


@router.get("/grants/{grant_id}")
def get_grant(grant_id: str, rt: Rt, _: AdminActor, response: Response) -> dict[str, Any]:
    grant = rt.grants.get(grant_id)
    response.headers["ETag"] = policy_etag(grant["policy"])
    return grant


@router.patch("/grants/{grant_id}")
def update_grant(
    grant_id: str,
    body: GrantUpdate,
    rt: Rt,
    actor: AdminActor,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    """With ``If-Match: <the ETag of a GET>``, a policy changed since that read is a 412 and
    nothing is written: a read-modify-write client cannot lose another's change."""
    expected = etags.if_match(request.headers.getlist("if-match"))
    grant = rt.grants.update_policy(grant_id, body.policy, actor, expected=expected)
    response.headers["ETag"] = policy_etag(grant["policy"])
    return grant


@router.post("/grants/{grant_id}/clone", status_code=201)
def clone_grant(grant_id: str, body: GrantClone, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return rt.grants.clone(grant_id, body, actor)


@router.delete("/grants/{grant_id}", status_code=204)
def revoke_grant(grant_id: str, rt: Rt, actor: AdminActor) -> Response:
    if rt.connect.is_connection(grant_id):  # a connected account: revoked at the provider too
        anyio.from_thread.run(rt.connect.disconnect, grant_id, actor)
        return Response(status_code=204)
    rt.grants.revoke(grant_id, actor)
    return Response(status_code=204)


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """The query parameters that narrow both the audit listing and its export."""

    grant_id: str | None = None
    app_id: str | None = None
    caller: str | None = None
    event: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # Keys of the use event's X-Alter-Context (audit/context.py).
    run_id: str | None = None
    thread_id: str | None = None
    tool: str | None = None
    agent: str | None = None  # the verified managed agent's name
    # The provider slug of the event's secret (openai, anthropic, ...).
    provider: str | None = None


AuditQuery = Annotated[AuditFilters, Depends()]


@router.get("/audit")
def list_audit(
    rt: Rt,
    _: AdminActor,
    filters: AuditQuery,
    limit: int = Query(default=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    items, next_cursor = queries.list_events(
        rt.engine, **asdict(filters), limit=limit, cursor=cursor
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/audit/export")
def export_audit(
    rt: Rt,
    _: AdminActor,
    filters: AuditQuery,
    format: Literal["jsonl", "csv"] = Query(default="jsonl"),
) -> StreamingResponse:
    lines = queries.export_jsonl(rt.engine, **asdict(filters))
    if format == "csv":
        return StreamingResponse(tabular.csv_rows(lines), media_type="text/csv; charset=utf-8")
    return StreamingResponse((line + "\n" for line in lines), media_type="application/x-ndjson")


@router.get("/audit/verify")
def verify_audit(rt: Rt, _: AdminActor) -> dict[str, Any]:
    return queries.verify_chain(rt.engine, rt.audit_key).as_dict()


@router.get("/providers")
def list_providers(rt: Rt, q: str | None = None) -> dict[str, Any]:
    providers = rt.catalogue.search(q) if q else rt.catalogue.all()
    return {"items": [p.to_public() for p in providers]}


@router.get("/providers/{slug}")
def get_provider(slug: str, rt: Rt) -> dict[str, Any]:
    return rt.catalogue.get(slug).to_public()
