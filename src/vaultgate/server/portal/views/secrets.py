"""The Managed Secrets tab: list per app, add (provider picker or custom), show, rotate, delete."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.injection.credential import CREDENTIAL_TYPES, OPTIONAL_FIELDS, REQUIRED_FIELDS
from vaultgate.server.api.deps import runtime
from vaultgate.server.errors import NotFound, VaultError
from vaultgate.server.portal import forms
from vaultgate.server.portal.pages import render
from vaultgate.server.portal.routing import Form, PortalActor, PortalRoute, User, context, see_other
from vaultgate.server.portal.snippets import snippets
from vaultgate.server.portal.usage import last_uses
from vaultgate.server.providers import Provider

router = APIRouter(prefix="/portal", route_class=PortalRoute)
CUSTOM = "custom"


@router.get("/secrets", include_in_schema=False)
def list_secrets(request: Request, user: User, app_id: str | None = None) -> Response:
    rt = runtime(request)
    apps = rt.keys.list_apps()
    app = next((a for a in apps if a["id"] == app_id), apps[0] if apps else None)
    items = rt.secrets.list(app["id"]) if app else []
    used = last_uses(rt.engine, "secret_id", [s["secret_id"] for s in items])
    for item in items:
        item["last_use"] = used.get(item["secret_id"]) or item["last_used_at"]
    deleted = request.query_params.get("deleted") == "1"
    notice = "Deleted: its grants are revoked and its value destroyed." if deleted else None
    ctx = context(
        request, "secrets", title="Managed secrets", apps=apps, app=app, items=items, notice=notice
    )
    return render("secrets.html", ctx)


@router.get("/secrets/new", include_in_schema=False)
def picker(request: Request, user: User, app_id: str = "", q: str = "") -> Response:
    rt = runtime(request)
    providers = rt.catalogue.search(q) if q else rt.catalogue.all()
    return render(
        "picker.html",
        context(request, "secrets", title="Add a secret", q=q, app_id=app_id, providers=providers),
    )


def _provider(request: Request, slug: str) -> Provider | None:
    if slug == CUSTOM:
        return None
    provider = runtime(request).catalogue.get(slug)
    if not provider.injectable:
        raise NotFound(
            f"{provider.name} takes its key in the URL path, which vaultgate cannot "
            "inject; add it as a Custom secret if its API has a header form"
        )
    return provider


# The custom form's types. OAuth credentials are connected through the OAuth tab (Connect) or
# stored through the API: their fields (token URL, client id...) need more than a secret input.
FORM_TYPES = tuple(t for t in CREDENTIAL_TYPES if not t.startswith("oauth2_"))


def _credential_groups() -> list[tuple[str, list[str]]]:
    """Types sharing the same fields share one group of inputs: ("bearer api_key", ["token"])."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for ctype in FORM_TYPES:
        groups.setdefault((*REQUIRED_FIELDS[ctype], *OPTIONAL_FIELDS[ctype]), []).append(ctype)
    return [(" ".join(types), list(names)) for names, types in groups.items()]


def _form_page(
    request: Request,
    provider: Provider | None,
    values: dict[str, Any],
    errors: forms.FieldErrors,
    status: int = 200,
) -> Response:
    rt = runtime(request)
    ctx = context(
        request,
        "secrets",
        title="Add a secret",
        provider=provider,
        public=provider.to_public() if provider else None,
        apps=rt.keys.list_apps(),
        values=values,
        errors=errors,
        types=FORM_TYPES,
        credential_groups=_credential_groups(),
        rows=range(forms.ADDITIONAL_ROWS),
    )
    return render("secret_new.html", ctx, status=status)


@router.get("/secrets/new/{slug}", include_in_schema=False)
def new_secret(request: Request, slug: str, user: User, app_id: str = "") -> Response:
    provider = _provider(request, slug)
    values = {"app_id": app_id, "name": provider.name if provider else ""}
    return _form_page(request, provider, values, {})


def _known_fields(provider: Provider | None) -> list[str]:
    """The fields on this form, where an error can be shown; any other error is the form's."""
    names = ["app_id", "name", "allowed_hosts"]
    if provider is not None:
        names += [f"provider_params.{p}" for p in provider.params]
        names += [f"credential.{n}" for n in provider.credential_field_names()]
    else:
        names += ["credential_type", "injection.header", "injection.format"]
        names += ["aws.region", "aws.service"]
        names += [
            f"injection.additional[{i}].{part}"
            for i in range(forms.ADDITIONAL_ROWS)
            for part in ("target", "name", "value")
        ]
        names += [f"credential.{n}" for t in FORM_TYPES for n in REQUIRED_FIELDS[t]]
        names.append("credential.session_token")
    return names


@router.post("/secrets/new/{slug}", include_in_schema=False)
def create_secret(request: Request, slug: str, actor: PortalActor, form: Form) -> Response:
    provider = _provider(request, slug)
    known = _known_fields(provider)
    body, errors = forms.secret_body(form, provider, known)
    if body is not None:
        try:
            created = runtime(request).secrets.create(body, actor)
        except VaultError as exc:
            errors = forms.errors_from(exc, known)
        else:
            return see_other(f"/portal/secrets/{quote(created['secret_id'])}?created=1")
    return _form_page(request, provider, forms.echo(form), errors, status=422)


def _detail(request: Request, secret_id: str, **extra: Any) -> Response:
    rt = runtime(request)
    secret = rt.secrets.get(secret_id)
    grants = [rt.grants.get(g["grant_id"]) for g in secret["grants"]]
    provider = rt.catalogue.get(secret["provider"]) if secret["provider"] else None
    used = last_uses(rt.engine, "secret_id", [secret_id]).get(secret_id)
    ctx = context(
        request,
        "secrets",
        title=secret["name"],
        secret=secret,
        grants=grants,
        app=rt.keys.get_app(secret["app_id"]),
        last_use=used or secret["last_used_at"],
        fields=forms.credential_names(provider, secret["credential_type"]),
        snippet=snippets(secret["grant_id"], secret["allowed_hosts"], str(request.base_url)),
        created=request.query_params.get("created") == "1",
        rotated=request.query_params.get("rotated") == "1",
        summary_prefix="rotate-",
        **extra,
    )
    return render("secret.html", ctx, status=422 if extra.get("errors") else 200)


@router.get("/secrets/{secret_id}", include_in_schema=False)
def show_secret(request: Request, secret_id: str, user: User) -> Response:
    return _detail(request, secret_id)


@router.post("/secrets/{secret_id}/rotate", include_in_schema=False)
def rotate_secret(request: Request, secret_id: str, actor: PortalActor, form: Form) -> Response:
    rt = runtime(request)
    secret = rt.secrets.get(secret_id)
    provider = rt.catalogue.get(secret["provider"]) if secret["provider"] else None
    names = forms.credential_names(provider, secret["credential_type"])
    credential = forms.credential_from(form, names)
    if not credential:
        return _detail(request, secret_id, errors={f"credential.{names[0]}": "enter the new value"})
    try:
        rt.secrets.rotate(secret_id, credential, actor)
    except VaultError as exc:
        return _detail(
            request, secret_id, errors=forms.errors_from(exc, [f"credential.{n}" for n in names])
        )
    return see_other(f"/portal/secrets/{quote(secret_id)}?rotated=1")


@router.post("/secrets/{secret_id}/delete", include_in_schema=False)
def delete_secret(request: Request, secret_id: str, actor: PortalActor, form: Form) -> Response:
    rt = runtime(request)
    app_id = rt.secrets.get(secret_id)["app_id"]
    rt.secrets.delete(secret_id, actor)
    return see_other(f"/portal/secrets?app_id={quote(app_id)}&deleted=1")
