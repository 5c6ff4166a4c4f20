"""``vaultgate apps`` and ``vaultgate keys``: tenants and their API keys."""

from __future__ import annotations

from typing import Any

import click

from vaultgate.cli.output import emit
from vaultgate.cli.params import expiry_body, expiry_options
from vaultgate.cli.remote import api, json_option


@click.group()
def apps() -> None:
    """Apps: the tenant boundary of grants and app keys."""


@apps.command("create")
@click.argument("name")
@json_option
@click.pass_context
def apps_create(ctx: click.Context, name: str, as_json: bool) -> None:
    """Create an app; prints its id."""
    emit(api(ctx).call("POST", "/v1/apps", json={"name": name}), as_json=as_json)


@apps.command("list")
@json_option
@click.pass_context
def apps_list(ctx: click.Context, as_json: bool) -> None:
    """List apps."""
    emit(
        api(ctx).call("GET", "/v1/apps")["items"],
        as_json=as_json,
        columns=["id", "name", "created_at"],
    )


@click.group()
def keys() -> None:
    """App API keys (alter_key_...): shown once at creation."""


@keys.command("create")
@click.argument("app_id")
@click.option("--name", required=True, help="A name to tell the key by.")
@expiry_options
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Limit the key to this scope (repeat; e.g. proxy:execute). Default: every scope.",
)
@click.option(
    "--cidr", "cidrs", multiple=True, help="Accept the key only from this network (repeat)."
)
@click.option(
    "--rate-limit-rpm",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many requests per minute with the key.",
)
@json_option
@click.pass_context
def keys_create(
    ctx: click.Context,
    app_id: str,
    name: str,
    expires_at: str | None,
    expires_in: int | None,
    scopes: tuple[str, ...],
    cidrs: tuple[str, ...],
    rate_limit_rpm: int | None,
    as_json: bool,
) -> None:
    """Create an app key (alter_key_...); it is printed once, store it now."""
    body: dict[str, Any] = {"name": name, **expiry_body(expires_at, expires_in)}
    if scopes:
        body["scopes"] = list(scopes)
    if cidrs:
        body["cidr_allowlist"] = list(cidrs)
    if rate_limit_rpm is not None:
        body["rate_limit_rpm"] = rate_limit_rpm
    emit(api(ctx).call("POST", f"/v1/apps/{app_id}/keys", json=body), as_json=as_json)


@keys.command("list")
@click.argument("app_id")
@json_option
@click.pass_context
def keys_list(ctx: click.Context, app_id: str, as_json: bool) -> None:
    """List an app's keys (hints only, never a key)."""
    emit(
        api(ctx).call("GET", f"/v1/apps/{app_id}/keys")["items"],
        as_json=as_json,
        columns=[
            "id",
            "name",
            "hint",
            "scopes",
            "cidr_allowlist",
            "rate_limit_rpm",
            "created_at",
            "expires_at",
            "revoked_at",
        ],
    )


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by its id; it stops working at once on this node."""
    api(ctx).call("DELETE", f"/v1/keys/{key_id}")
    click.echo(f"revoked key {key_id}")
