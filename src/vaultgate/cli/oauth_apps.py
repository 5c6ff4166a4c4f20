"""``vaultgate oauth-apps`` and ``vaultgate connections``: the OAuth clients end users connect
their accounts through, and the accounts they connected. The client secret is read from a
prompt, --from-file or --stdin, never from argv, and never printed back."""

from __future__ import annotations

from typing import Any

import click

from vaultgate.cli.output import emit
from vaultgate.cli.remote import api, json_option
from vaultgate.cli.secrets import _read_value

TEMPLATES = ("github", "google", "slack", "microsoft", "custom")


@click.group("oauth-apps")
def oauth_apps() -> None:
    """OAuth apps: one OAuth client per app and provider, from a template or custom."""


@oauth_apps.command("templates")
@json_option
@click.pass_context
def templates(ctx: click.Context, as_json: bool) -> None:
    """List the provider templates and their endpoints."""
    items = api(ctx).call("GET", "/v1/oauth-templates")["items"]
    emit(items, as_json=as_json, columns=["template", "authorize_url", "revoke_url", "pkce"])


@oauth_apps.command("create")
@click.argument("app_id")
@click.option("--provider", required=True, help="The id request(provider=...) names, e.g. github.")
@click.option(
    "--template",
    type=click.Choice(TEMPLATES),
    default="custom",
    show_default=True,
    help="A provider template; custom needs --authorize-url, --token-url and more.",
)
@click.option("--client-id", required=True, help="The OAuth client id the provider issued.")
@click.option("--no-secret", is_flag=True, help="A public client (client_auth_method none).")
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Read the client secret from this file.",
)
@click.option("--stdin", is_flag=True, help="Read the client secret from standard input.")
@click.option("--scope", "scopes", multiple=True, help="A scope (repeat); default: the template's.")
@click.option("--redirect-uri", help="Default: <public URL>/connect/callback.")
@click.option("--authorize-url", help="The authorization endpoint (custom, or an override).")
@click.option("--token-url", help="The token endpoint (custom, or an override).")
@click.option("--revoke-url", help="The RFC 7009 revocation endpoint, if the provider has one.")
@click.option("--userinfo-url", help="Where the connected account's id is read.")
@click.option("--account-id-field", help="Dotted path to the account id (e.g. id, team.id).")
@click.option("--account-login-field", help="Dotted path to the account's login or email.")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="Where the access token may be sent (repeat).",
)
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    /,
    app_id: str,
    no_secret: bool,
    from_file: str | None,
    stdin: bool,
    scopes: tuple[str, ...],
    allowed_hosts: tuple[str, ...],
    as_json: bool,
    **fields: Any,
) -> None:
    """Register an OAuth app; its client secret is sealed and never shown again."""
    body: dict[str, Any] = {"app_id": app_id, **{k: v for k, v in fields.items() if v}}
    if no_secret:
        body["client_auth_method"] = "none"
    else:
        body["client_secret"] = _read_value(from_file, stdin, "client secret")
    if scopes:
        body["scopes"] = list(scopes)
    if allowed_hosts:
        body["allowed_hosts"] = list(allowed_hosts)
    emit(api(ctx).call("POST", "/v1/oauth-apps", json=body), as_json=as_json)


@oauth_apps.command("list")
@click.option("--app-id", help="Only this app's OAuth apps.")
@json_option
@click.pass_context
def list_(ctx: click.Context, app_id: str | None, as_json: bool) -> None:
    """List OAuth apps (never their secret)."""
    params = {"app_id": app_id} if app_id else None
    items = api(ctx).call("GET", "/v1/oauth-apps", params=params)["items"]
    emit(items, as_json=as_json, columns=["id", "app_id", "provider", "template", "client_id"])


@oauth_apps.command("delete")
@click.argument("oauth_app_id")
@click.pass_context
def delete(ctx: click.Context, oauth_app_id: str) -> None:
    """Delete an OAuth app; accounts already connected stay."""
    api(ctx).call("DELETE", f"/v1/oauth-apps/{oauth_app_id}")
    click.echo("deleted")


@click.group()
def connections() -> None:
    """Accounts end users connected (Connect), per end user."""


@connections.command("list")
@click.option("--app-id", help="Only this app's connections.")
@click.option("--user", "app_user_id", help="Only this end user's connections.")
@json_option
@click.pass_context
def connections_list(
    ctx: click.Context, app_id: str | None, app_user_id: str | None, as_json: bool
) -> None:
    """List connected accounts (never their tokens)."""
    params = {k: v for k, v in {"app_id": app_id, "app_user_id": app_user_id}.items() if v}
    items = api(ctx).call("GET", "/v1/oauth-connections", params=params or None)["items"]
    columns = ["grant_id", "provider", "app_user_id", "account_login", "status"]
    emit(items, as_json=as_json, columns=columns)


@connections.command("disconnect")
@click.argument("grant_id")
@json_option
@click.pass_context
def disconnect(ctx: click.Context, grant_id: str, as_json: bool) -> None:
    """Revoke the account's tokens at the provider (where it can) and forget them."""
    emit(api(ctx).call("DELETE", f"/v1/oauth-connections/{grant_id}"), as_json=as_json)
