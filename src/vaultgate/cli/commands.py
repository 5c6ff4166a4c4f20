"""The ``vaultgate`` command group and every command in it (``main.py`` runs it)."""

from __future__ import annotations

import os

import click

from vaultgate.cli import (
    admin_keys,
    approvals,
    apps,
    audit,
    grants,
    local,
    oauth_apps,
    providers,
    secrets,
)


@click.group()
@click.option("--url", default=None, help="Vault URL for API commands (VAULTGATE_URL).")
@click.option(
    "--admin-key",
    default=None,
    envvar=None,
    help="Prefer VAULTGATE_ADMIN_KEY: a flag shows in `ps` and shell history.",
)
@click.pass_context
def cli(ctx: click.Context, url: str | None, admin_key: str | None) -> None:
    """vaultgate: store a credential once, use it by grant_id, never see it again."""
    ctx.ensure_object(dict)
    ctx.obj.setdefault("env", dict(os.environ))
    ctx.obj["url"] = url
    ctx.obj["admin_key"] = admin_key


for command in (
    local.init,
    local.serve,
    local.master_key,
    local.users,
    apps.apps,
    apps.keys,
    admin_keys.admin_keys,
    secrets.secrets,
    grants.grants,
    audit.audit,
    providers.providers,
    approvals.approvals,
    oauth_apps.oauth_apps,
    oauth_apps.connections,
):
    cli.add_command(command)
