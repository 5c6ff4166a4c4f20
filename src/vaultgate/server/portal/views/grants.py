"""One grant: its snippet, its policy (edit), a clone with a TTL, and revocation."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from vaultgate.server.api.deps import runtime
from vaultgate.server.budgets.services import UsageService
from vaultgate.server.errors import PreconditionFailed, VaultError
from vaultgate.server.portal import forms
from vaultgate.server.portal.pages import render
from vaultgate.server.portal.routing import Form, PortalActor, PortalRoute, User, context, see_other
from vaultgate.server.portal.snippets import snippets
from vaultgate.server.secrets.grants import policy_etag
from vaultgate.server.secrets.models import GrantClone

router = APIRouter(prefix="/portal", route_class=PortalRoute)
CLONE_FIELDS = ("name", "ttl_seconds", *forms.POLICY_FIELDS)
EDIT_FIELDS = (*forms.POLICY_FIELDS, *forms.BUDGET_FIELDS)


STALE_FORM = (
    "This grant's policy was changed elsewhere after this page was loaded, so your changes were "
    "not saved. The form now shows the current policy: make your change again and save."
)


def _page(request: Request, grant_id: str, status: int | None = None, **extra: Any) -> Response:
    rt = runtime(request)
    grant = rt.grants.get(grant_id)
    secret = rt.secrets.get(grant["secret_id"])
    flags = {
        name: request.query_params.get(name) == "1" for name in ("created", "saved", "revoked")
    }
    ctx = context(
        request,
        "secrets",
        title=f"Grant of {secret['name']}",
        grant=grant,
        secret=secret,
        snippet=snippets(grant_id, secret["allowed_hosts"], str(request.base_url)),
        children=[g for g in secret["grants"] if g["parent_grant_id"] == grant_id],
        usage=UsageService(rt.engine, rt.grants, rt.clock).usage(grant_id),
        methods=forms.ALL_METHODS,
        budget_kinds=forms.BUDGET_KINDS,
        budget_periods=[(per, per) for per in forms.BUDGET_PERIODS],
        policy_values=forms.policy_values(grant["policy"]),
        policy_etag=policy_etag(grant["policy"]),
        policy_errors={},
        clone_values={"policy.allowed_methods": []},
        clone_errors={},
        **flags,
    )
    ctx.update({name: value for name, value in extra.items() if value is not None})
    failed = extra.get("policy_errors") or extra.get("clone_errors")
    return render("grant.html", ctx, status=status or (422 if failed else 200))


@router.get("/grants/{grant_id}", include_in_schema=False)
def show_grant(request: Request, grant_id: str, user: User) -> Response:
    return _page(request, grant_id)


@router.post("/grants/{grant_id}/policy", include_in_schema=False)
def update_policy(request: Request, grant_id: str, actor: PortalActor, form: Form) -> Response:
    doc, errors = forms.policy_doc(form)
    # The tag of the policy the page showed: a save based on a policy changed since (by API,
    # CLI or another tab) is refused, not merged over the change.
    based_on = form.get("policy_etag") or None
    if not errors:
        try:
            # The API's own call: one set of rules, one transaction, one grant:update event. The
            # form has no fields for an approval rule: the stored one is kept, read under the lock.
            runtime(request).grants.update_policy(
                grant_id,
                doc,
                actor,
                expected=None if based_on is None else {based_on},
                keep=forms.NOT_ON_FORM,
            )
        except PreconditionFailed:
            # The form shows the policy as it is now, with its new tag: re-applying the change
            # on top of it is the user's call, never a silent overwrite.
            return _page(request, grant_id, policy_errors={"": STALE_FORM}, status=409)
        except VaultError as exc:
            errors = forms.errors_from(exc, EDIT_FIELDS)
        else:
            return see_other(f"/portal/grants/{quote(grant_id)}?saved=1")
    return _page(
        request,
        grant_id,
        policy_errors=errors,
        policy_values=forms.echo(form),
        policy_etag=based_on,
    )


@router.post("/grants/{grant_id}/clone", include_in_schema=False)
def clone_grant(request: Request, grant_id: str, actor: PortalActor, form: Form) -> Response:
    doc, errors = forms.policy_doc(form)
    try:
        ttl = forms.ttl_seconds(form.get("ttl_seconds"))
    except ValueError as exc:
        errors["ttl_seconds"] = str(exc)
    if not errors:
        try:
            body = GrantClone(name=form.get("name") or None, ttl_seconds=ttl, policy=doc or None)
            clone = runtime(request).grants.clone(grant_id, body, actor)
        except VaultError as exc:
            errors = forms.errors_from(exc, CLONE_FIELDS)
        except ValidationError as exc:
            errors = forms.errors_from_validation(exc, CLONE_FIELDS)
        else:
            return see_other(f"/portal/grants/{quote(clone['grant_id'])}?created=1")
    return _page(request, grant_id, clone_errors=errors, clone_values=forms.echo(form))


@router.post("/grants/{grant_id}/revoke", include_in_schema=False)
def revoke_grant(request: Request, grant_id: str, actor: PortalActor, form: Form) -> Response:
    runtime(request).grants.revoke(grant_id, actor)
    return see_other(f"/portal/grants/{quote(grant_id)}?revoked=1")
