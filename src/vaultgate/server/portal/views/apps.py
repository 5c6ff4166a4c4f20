"""The Apps and API keys tab: create an app; create a key (shown once), see its use, revoke it."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from vaultgate.server.api.deps import runtime
from vaultgate.server.auth import app_keys
from vaultgate.server.auth.scopes import ALL_SCOPES
from vaultgate.server.auth.services import parse_expiry
from vaultgate.server.errors import Unprocessable, VaultError
from vaultgate.server.portal import forms
from vaultgate.server.portal.pages import render
from vaultgate.server.portal.routing import (
    Fields,
    Form,
    PortalActor,
    PortalRoute,
    User,
    context,
    see_other,
)
from vaultgate.server.portal.usage import last_uses
from vaultgate.server.secrets.models import AppCreate, KeyCreate

router = APIRouter(prefix="/portal", route_class=PortalRoute)


def _apps_page(request: Request, **extra: Any) -> Response:
    ctx = context(
        request,
        "apps",
        title="Apps and API keys",
        apps=runtime(request).keys.list_apps(),
        values={},
    )
    ctx.update(extra)  # a refused form brings its own values and errors
    return render("apps.html", ctx, status=422 if extra.get("errors") else 200)


@router.get("/apps", include_in_schema=False)
def list_apps(request: Request, user: User) -> Response:
    return _apps_page(request)


@router.post("/apps", include_in_schema=False)
def create_app(request: Request, actor: PortalActor, form: Form) -> Response:
    try:
        body = AppCreate(name=form.get("name"))
        app = runtime(request).keys.create_app(body.name, actor)
    except ValidationError as exc:
        return _apps_page(
            request, errors=forms.errors_from_validation(exc, ["name"]), values=forms.echo(form)
        )
    except VaultError as exc:
        return _apps_page(request, errors=forms.errors_from(exc, ["name"]), values=forms.echo(form))
    return see_other(f"/portal/apps/{quote(app['id'])}?created=1")


def _app_page(request: Request, app_id: str, **extra: Any) -> Response:
    rt = runtime(request)
    app = rt.keys.get_app(app_id)
    keys = app_keys.list_app_keys(rt.engine, rt.keys, app_id)
    used = last_uses(rt.engine, "key_id", [k["id"] for k in keys])
    for key in keys:
        key["last_use"] = used.get(key["id"]) or key["last_used_at"]
    ctx = context(
        request,
        "apps",
        title=app["name"],
        app=app,
        keys=keys,
        values={},
        created=request.query_params.get("created") == "1",
        revoked=request.query_params.get("revoked") == "1",
        new_key=None,
        all_scopes=len(ALL_SCOPES),
    )
    ctx.update(extra)
    return render("app.html", ctx, status=422 if extra.get("errors") else 200)


@router.get("/apps/{app_id}", include_in_schema=False)
def show_app(request: Request, app_id: str, user: User) -> Response:
    return _app_page(request, app_id)


@router.post("/apps/{app_id}/keys", include_in_schema=False)
def create_key(request: Request, app_id: str, actor: PortalActor, form: Form) -> Response:
    rt = runtime(request)
    known = ["name", "expires_at", *app_keys.LIMITS]
    try:
        body = KeyCreate(
            name=form.get("name"), expires_at=form.get("expires_at") or None, **_limits(form)
        )
        expires_at = parse_expiry(body.expires_at, rt.clock())
        limits = body.model_dump(include=set(app_keys.LIMITS))
        made = app_keys.create_app_key(rt.keys, app_id, body.name, expires_at, limits, actor)
    except ValidationError as exc:
        errors = forms.errors_from_validation(exc, known)
    except VaultError as exc:
        errors = forms.errors_from(exc, known)
    else:
        # Rendered, not redirected: the key exists in this one answer and nowhere else.
        return _app_page(request, app_id, new_key=made)
    return _app_page(request, app_id, errors=errors, values=forms.echo(form))


def _limits(form: Fields) -> dict[str, Any]:
    """The key-limit fields of the form: lists split on commas or spaces, empty means none."""
    scopes = re.split(r"[\s,]+", form.get("scopes") or "")
    cidrs = re.split(r"[\s,]+", form.get("cidr_allowlist") or "")
    rpm = (form.get("rate_limit_rpm") or "").strip()
    if rpm and not rpm.isdigit():
        raise Unprocessable(
            "rate_limit_rpm: a whole number of requests per minute", field="rate_limit_rpm"
        )
    return {
        "scopes": [s for s in scopes if s] or None,
        "cidr_allowlist": [c for c in cidrs if c] or None,
        "rate_limit_rpm": int(rpm) if rpm else None,
    }


@router.post("/keys/{key_id}/revoke", include_in_schema=False)
def revoke_key(request: Request, key_id: str, actor: PortalActor, form: Form) -> Response:
    runtime(request).keys.revoke_key(key_id, actor)
    app_id = form.get("app_id")
    target = f"/portal/apps/{quote(app_id, safe='')}?revoked=1" if app_id else "/portal/apps"
    return see_other(target)
