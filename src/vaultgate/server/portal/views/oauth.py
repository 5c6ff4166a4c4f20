"""The OAuth tab: the OAuth apps registered per provider (create from a template, delete), and
the accounts end users connected, grouped by end user (disconnect revokes at the provider)."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from vaultgate.server.api.deps import runtime
from vaultgate.server.errors import VaultError
from vaultgate.server.oauth.apps import TEMPLATE_NAMES, OAuthAppCreate
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

router = APIRouter(prefix="/portal", route_class=PortalRoute)

# The form's names; the client secret travels under the write-only credential prefix, so a
# refused form never puts it back into the page.
KNOWN = [
    "app_id",
    "provider",
    "template",
    "client_id",
    "client_secret",
    "scopes",
    "redirect_uri",
    "authorize_url",
    "token_url",
    "revoke_url",
    "userinfo_url",
    "account_id_field",
    "allowed_hosts",
]
URLS = ("redirect_uri", "authorize_url", "token_url", "revoke_url", "userinfo_url")


def _page(request: Request, **extra: Any) -> Response:
    rt = runtime(request)
    connections = rt.connect.connections()
    by_user = [
        (user or "(the app itself)", list(rows))
        for user, rows in groupby(connections, key=lambda r: r["app_user_id"])
    ]
    ctx = context(
        request,
        "oauth",
        title="OAuth apps and connected accounts",
        oauth_apps=rt.oauth_apps.all(),
        apps=rt.keys.list_apps(),
        templates=[(name, name) for name in TEMPLATE_NAMES],
        by_user=by_user,
        callback_url=rt.oauth_apps.callback_url,
        values={"template": "github"},
        notice=request.query_params.get("done"),
    )
    ctx.update(extra)
    return render("oauth.html", ctx, status=422 if extra.get("errors") else 200)


def _body(form: Fields) -> OAuthAppCreate:
    optional = {name: form.get(name) or None for name in URLS}
    return OAuthAppCreate(
        app_id=form.get("app_id"),
        provider=form.get("provider"),
        template=form.get("template") or "custom",
        client_id=form.get("client_id"),
        client_secret=form.get(forms.SECRET_PREFIX + "client_secret") or None,
        scopes=form.get("scopes").split() or None,
        account_id_field=form.get("account_id_field") or None,
        allowed_hosts=form.lines("allowed_hosts") or None,
        **optional,
    )


@router.get("/oauth", include_in_schema=False)
def show(request: Request, user: User) -> Response:
    return _page(request)


@router.post("/oauth", include_in_schema=False)
def create(request: Request, actor: PortalActor, form: Form) -> Response:
    try:
        runtime(request).oauth_apps.create(_body(form), actor)
    except ValidationError as exc:
        errors = forms.errors_from_validation(exc, KNOWN)
    except VaultError as exc:
        errors = forms.errors_from(exc, KNOWN)
    else:
        return see_other("/portal/oauth?done=OAuth+app+registered.")
    if "client_secret" in errors:  # shown beside the write-only input of that name
        errors[forms.SECRET_PREFIX + "client_secret"] = errors.pop("client_secret")
    for key in list(errors):  # "allowed_hosts[2]", "scopes.0": the one input they came from
        base = key.split("[", 1)[0].split(".", 1)[0]
        if base in ("allowed_hosts", "scopes") and key != base:
            errors.setdefault(base, errors.pop(key))
    return _page(request, errors=errors, values=forms.echo(form))


@router.post("/oauth/apps/{oauth_app_id}/delete", include_in_schema=False)
def delete(request: Request, oauth_app_id: str, actor: PortalActor, form: Form) -> Response:
    runtime(request).oauth_apps.delete(oauth_app_id, actor)
    return see_other("/portal/oauth?done=OAuth+app+deleted.")


@router.post("/oauth/connections/{grant_id}/disconnect", include_in_schema=False)
async def disconnect(request: Request, grant_id: str, actor: PortalActor, form: Form) -> Response:
    await runtime(request).connect.disconnect(grant_id, actor)
    return see_other("/portal/oauth?done=Account+disconnected.")
