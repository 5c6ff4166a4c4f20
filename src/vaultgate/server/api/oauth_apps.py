"""Management API for OAuth: ``/v1/oauth-apps`` (the OAuth clients an operator registers), the
templates, and ``/v1/oauth-connections`` (the accounts end users connected, per user)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from vaultgate.server.api.deps import AdminActor, Rt
from vaultgate.server.oauth.apps import OAuthAppCreate, template_catalogue

router = APIRouter(prefix="/v1", tags=["oauth"])


@router.get("/oauth-templates")
def list_templates(_: AdminActor) -> dict[str, Any]:
    return {"items": template_catalogue()}


@router.post("/oauth-apps", status_code=201)
def create_oauth_app(body: OAuthAppCreate, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return rt.oauth_apps.create(body, actor)


@router.get("/oauth-apps")
def list_oauth_apps(rt: Rt, _: AdminActor, app_id: str | None = None) -> dict[str, Any]:
    return {"items": rt.oauth_apps.all(app_id)}


@router.get("/oauth-apps/{oauth_app_id}")
def get_oauth_app(oauth_app_id: str, rt: Rt, _: AdminActor) -> dict[str, Any]:
    return rt.oauth_apps.get(oauth_app_id)


@router.delete("/oauth-apps/{oauth_app_id}", status_code=204)
def delete_oauth_app(oauth_app_id: str, rt: Rt, actor: AdminActor) -> Response:
    rt.oauth_apps.delete(oauth_app_id, actor)
    return Response(status_code=204)


@router.get("/oauth-connections")
def list_connections(
    rt: Rt, _: AdminActor, app_id: str | None = None, app_user_id: str | None = None
) -> dict[str, Any]:
    return {"items": rt.connect.connections(app_id, app_user_id)}


@router.delete("/oauth-connections/{grant_id}")
async def disconnect(grant_id: str, rt: Rt, actor: AdminActor) -> dict[str, Any]:
    return await rt.connect.disconnect(grant_id, actor)
