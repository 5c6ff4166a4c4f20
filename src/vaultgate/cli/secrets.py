"""``vaultgate secrets``: store, list, show, rotate and delete secrets.

A value is read from a prompt, ``--from-file`` or standard input, never from argv.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from vaultgate.cli.argv import NoSecretInArgv
from vaultgate.cli.output import emit
from vaultgate.cli.remote import api, json_arg, json_option

CREDENTIAL_TYPES = click.Choice(
    ["bearer", "api_key", "basic", "aws_sigv4", "oauth2_client_credentials", "oauth2_refresh_token"]
)
# The field a bare (non-JSON) secret input fills, by type; the rest come from --field.
_BARE_FIELD = {
    "basic": "password",
    "aws_sigv4": "secret_access_key",
    "oauth2_client_credentials": "client_secret",
    "oauth2_refresh_token": "refresh_token",
}


@click.group()
def secrets() -> None:
    """Secrets: the value is read from a prompt, --from-file or --stdin, never from argv."""


def _read_value(from_file: str | None, stdin: bool, label: str) -> str:
    if from_file:
        return Path(from_file).read_text().rstrip("\r\n")
    if stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(label, hide_input=True))


def _credential(
    ctype: str | None, from_file: str | None, stdin: bool, fields: tuple[str, ...]
) -> dict[str, str]:
    """The credential: a JSON object when the input starts with '{', else the token alone.

    Named non-secret fields (``--field username=alice``) merge in.
    """
    raw = _read_value(from_file, stdin, "secret value")
    if raw.lstrip().startswith("{"):
        try:
            value: dict[str, str] = json.loads(raw)
        except ValueError:
            raise click.UsageError("the secret input starts with '{' but is not JSON") from None
    else:
        value = {_BARE_FIELD.get(ctype or "", "token"): raw}
    for item in fields:
        name, sep, val = item.partition("=")
        if not sep:
            raise click.UsageError(f"--field {item!r}: expected NAME=VALUE")
        value[name] = val
    return value


HOST_HELP = (
    "Allowed destination (repeat): host, host:port, *.domain or scheme://host[:port]. "
    "A bare host means https only: for a plain-http service give the origin, "
    "e.g. --host http://127.0.0.1:8080."
)
TYPE_HELP = "Credential type (required unless --provider sets it)."
FROM_FILE_HELP = "Read the value from this file (a trailing newline is dropped)."
STDIN_HELP = "Read the value from the first line of standard input."


@secrets.command("add", cls=NoSecretInArgv)
@click.option("--app", "app_id", required=True, help="Id of the app that owns the secret.")
@click.option("--name", required=True, help="Name of the secret, unique within its app.")
@click.option("--provider", default=None, help="Provider template slug (see `providers list`).")
@click.option("--type", "ctype", default=None, type=CREDENTIAL_TYPES, help=TYPE_HELP)
@click.option("--header", default=None, help="Custom injection header name.")
@click.option("--format", "fmt", default=None, help="Header value template, e.g. 'Token {token}'.")
@click.option("--query-param", default=None, help="Send the token as this query parameter.")
@click.option("--host", "hosts", multiple=True, help=HOST_HELP)
@click.option("--param", "params", multiple=True, help="Provider parameter NAME=VALUE.")
@click.option(
    "--field",
    "fields",
    multiple=True,
    help="A non-secret credential field NAME=VALUE (e.g. username=alice).",
)
@click.option(
    "--policy", default=None, help='Policy as JSON, e.g. \'{"allowed_methods": ["GET"]}\'.'
)
@click.option("--aws-region", default=None, help="AWS region to sign for (aws_sigv4).")
@click.option("--aws-service", default=None, help="AWS service to sign for (aws_sigv4).")
@click.option(
    "--from-file", type=click.Path(exists=True, dir_okay=False), default=None, help=FROM_FILE_HELP
)
@click.option("--stdin", is_flag=True, help=STDIN_HELP)
@json_option
@click.pass_context
def secrets_add(
    ctx: click.Context,
    app_id: str,
    name: str,
    provider: str | None,
    ctype: str | None,
    header: str | None,
    fmt: str | None,
    query_param: str | None,
    hosts: tuple[str, ...],
    params: tuple[str, ...],
    fields: tuple[str, ...],
    policy: str | None,
    aws_region: str | None,
    aws_service: str | None,
    from_file: str | None,
    stdin: bool,
    as_json: bool,
) -> None:
    """Store a secret; prints its grant_id.

    The value is read from a hidden prompt, --stdin or --from-file, never from the command
    line.

    \b
    A local plain-http service needs both:
      --host http://HOST:PORT on this command (a bare --host means https only)
      --allow-private-destinations 127.0.0.1/32 on `vaultgate serve`
        (private and loopback addresses are refused otherwise)
    """
    body: dict[str, Any] = {
        "app_id": app_id,
        "name": name,
        "credential": _credential(ctype, from_file, stdin, fields),
    }
    if provider:
        body["provider"] = provider
    if ctype:
        body["credential_type"] = ctype
    if header or query_param:
        body["injection"] = {
            "header": header,
            "format": fmt or ("{token}" if header else None),
            "additional": [{"target": "query", "name": query_param, "value": "{token}"}]
            if query_param
            else [],
        }
    if hosts:
        body["allowed_hosts"] = list(hosts)
    if params:
        body["provider_params"] = dict(p.partition("=")[::2] for p in params)
    if policy:
        body["policy"] = json_arg(policy, "--policy")
    if aws_region or aws_service:
        body["aws"] = {k: v for k, v in (("region", aws_region), ("service", aws_service)) if v}
    emit(api(ctx).call("POST", "/v1/secrets", json=body), as_json=as_json)


@secrets.command("list")
@click.option("--app", "app_id", default=None, help="Only the secrets of this app id.")
@json_option
@click.pass_context
def secrets_list(ctx: click.Context, app_id: str | None, as_json: bool) -> None:
    """List secrets (metadata only, never a value)."""
    params = {"app_id": app_id} if app_id else {}
    emit(
        api(ctx).call("GET", "/v1/secrets", params=params)["items"],
        as_json=as_json,
        columns=[
            "secret_id",
            "name",
            "provider",
            "credential_type",
            "allowed_hosts",
            "version",
            "grants",
        ],
    )


@secrets.command("show")
@click.argument("secret_id")
@json_option
@click.pass_context
def secrets_show(ctx: click.Context, secret_id: str, as_json: bool) -> None:
    """Show one secret's metadata, hosts and grants (never its value)."""
    emit(api(ctx).call("GET", f"/v1/secrets/{secret_id}"), as_json=as_json)


@secrets.command("rotate", cls=NoSecretInArgv)
@click.argument("secret_id")
@click.option("--type", "ctype", default=None, type=CREDENTIAL_TYPES, help=TYPE_HELP)
@click.option("--field", "fields", multiple=True, help="A non-secret credential field NAME=VALUE.")
@click.option(
    "--from-file", type=click.Path(exists=True, dir_okay=False), default=None, help=FROM_FILE_HELP
)
@click.option("--stdin", is_flag=True, help=STDIN_HELP)
@json_option
@click.pass_context
def secrets_rotate(
    ctx: click.Context,
    secret_id: str,
    ctype: str | None,
    fields: tuple[str, ...],
    from_file: str | None,
    stdin: bool,
    as_json: bool,
) -> None:
    """Store a new value; every grant uses it from the next request."""
    body = {"credential": _credential(ctype, from_file, stdin, fields)}
    emit(api(ctx).call("POST", f"/v1/secrets/{secret_id}/rotate", json=body), as_json=as_json)


@secrets.command("delete")
@click.argument("secret_id")
@click.pass_context
def secrets_delete(ctx: click.Context, secret_id: str) -> None:
    """Delete a secret; every grant of it is revoked."""
    api(ctx).call("DELETE", f"/v1/secrets/{secret_id}")
    click.echo(f"deleted secret {secret_id}; its grants are revoked")
