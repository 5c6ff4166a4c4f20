"""``vaultgate approvals``: the queue of held calls, one request, approve and deny.

The admin key calls the API; ``--as`` names the portal user the decision counts for (the API
refuses one who may not decide, or who asked).
"""

from __future__ import annotations

from typing import Any

import click

from vaultgate.cli.output import emit
from vaultgate.cli.remote import api, json_option

COLUMNS = ["id", "status", "method", "host", "caller", "approvals_given", "approvals_required"]


@click.group()
def approvals() -> None:
    """Calls waiting for people: list, show, approve, deny."""


@approvals.command("list")
@click.option("--status", default=None, help="pending, approved, executed, denied, ...")
@click.option("--grant", "grant_id", default=None, help="Only calls held on this grant_id.")
@click.option("--app", "app_id", default=None, help="Only calls of this app id.")
@json_option
@click.pass_context
def approvals_list(
    ctx: click.Context, status: str | None, grant_id: str | None, app_id: str | None, as_json: bool
) -> None:
    """List held calls, newest first."""
    params = {"status": status, "grant_id": grant_id, "app_id": app_id}
    query = {k: v for k, v in params.items() if v is not None}
    items = api(ctx).call("GET", "/v1/approvals", params=query)["items"]
    emit(items, as_json=as_json, columns=COLUMNS)


@approvals.command("show")
@click.argument("approval_id")
@json_option
@click.pass_context
def approvals_show(ctx: click.Context, approval_id: str, as_json: bool) -> None:
    """Show one held call: method, host, path, caller, reason, gates."""
    emit(api(ctx).call("GET", f"/v1/approvals/{approval_id}"), as_json=as_json)


def _decide(ctx: click.Context, verb: str, approval_id: str, who: str, comment: str | None) -> Any:
    body = {"approver": who, "comment": comment}
    return api(ctx).call("POST", f"/v1/approvals/{approval_id}/{verb}", json=body)


_AS = click.option("--as", "who", required=True, help="The portal user deciding (an email).")
_COMMENT = click.option("--comment", default=None, help="Why; kept in the audit trail.")


@approvals.command("approve")
@click.argument("approval_id")
@_AS
@_COMMENT
@json_option
@click.pass_context
def approvals_approve(
    ctx: click.Context, approval_id: str, who: str, comment: str | None, as_json: bool
) -> None:
    """Approve a held call as the portal user named by --as."""
    emit(_decide(ctx, "approve", approval_id, who, comment), as_json=as_json)


@approvals.command("deny")
@click.argument("approval_id")
@_AS
@_COMMENT
@json_option
@click.pass_context
def approvals_deny(
    ctx: click.Context, approval_id: str, who: str, comment: str | None, as_json: bool
) -> None:
    """Deny a held call as the portal user named by --as; nothing is sent."""
    emit(_decide(ctx, "deny", approval_id, who, comment), as_json=as_json)
