"""``vaultgate grants``: show, clone with a TTL, re-police and revoke grants."""

from __future__ import annotations

from typing import Any

import click

from vaultgate.cli.output import emit
from vaultgate.cli.params import DURATION
from vaultgate.cli.remote import api, json_arg, json_option


@click.group()
def grants() -> None:
    """Grants: show, clone with a TTL, re-police, revoke."""


@grants.command("show")
@click.argument("grant_id")
@json_option
@click.pass_context
def grants_show(ctx: click.Context, grant_id: str, as_json: bool) -> None:
    """Show a grant: its secret, policy, status and expiry."""
    emit(api(ctx).call("GET", f"/v1/grants/{grant_id}"), as_json=as_json)


@grants.command("clone")
@click.argument("grant_id")
@click.option(
    "--ttl",
    "ttl_seconds",
    type=DURATION,
    default=None,
    help="Time until the clone expires: seconds, or 30s, 15m, 2h, 7d.",
)
@click.option("--name", default=None, help="A name for the clone.")
@click.option("--policy", default=None, help="A narrower policy, as JSON.")
@json_option
@click.pass_context
def grants_clone(
    ctx: click.Context,
    grant_id: str,
    ttl_seconds: int | None,
    name: str | None,
    policy: str | None,
    as_json: bool,
) -> None:
    """Clone a grant, optionally narrower and expiring; prints the new grant_id."""
    body: dict[str, Any] = {}
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    if name:
        body["name"] = name
    if policy:
        body["policy"] = json_arg(policy, "--policy")
    emit(api(ctx).call("POST", f"/v1/grants/{grant_id}/clone", json=body), as_json=as_json)


@grants.command("update")
@click.argument("grant_id")
@click.option("--policy", required=True, help="The new policy, as JSON.")
@json_option
@click.pass_context
def grants_update(ctx: click.Context, grant_id: str, policy: str, as_json: bool) -> None:
    """Replace a grant's policy (a clone's stays within its parent's)."""
    body = {"policy": json_arg(policy, "--policy")}
    emit(api(ctx).call("PATCH", f"/v1/grants/{grant_id}", json=body), as_json=as_json)


@grants.command("revoke")
@click.argument("grant_id")
@click.pass_context
def grants_revoke(ctx: click.Context, grant_id: str) -> None:
    """Revoke a grant and every clone of it."""
    api(ctx).call("DELETE", f"/v1/grants/{grant_id}")
    click.echo(f"revoked grant {grant_id} and its clones")
