"""Commands that talk to a running vault's management API."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from vaultgate.cli.client import ApiClient
from vaultgate.cli.output import emit

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def api(ctx: click.Context) -> ApiClient:
    return ApiClient(ctx.obj["env"], ctx.obj.get("url"), ctx.obj.get("admin_key"))


# --- apps and keys ---------------------------------------------------------------------------
@click.group()
def apps() -> None:
    """Apps: the tenant boundary of grants and app keys."""


@apps.command("create")
@click.argument("name")
@json_option
@click.pass_context
def apps_create(ctx: click.Context, name: str, as_json: bool) -> None:
    emit(api(ctx).call("POST", "/v1/apps", json={"name": name}), as_json=as_json)


@apps.command("list")
@json_option
@click.pass_context
def apps_list(ctx: click.Context, as_json: bool) -> None:
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
@click.option("--name", required=True)
@click.option("--expires-at", default=None, help="ISO 8601 date-time with offset.")
@json_option
@click.pass_context
def keys_create(
    ctx: click.Context, app_id: str, name: str, expires_at: str | None, as_json: bool
) -> None:
    body: dict[str, Any] = {"name": name}
    if expires_at:
        body["expires_at"] = expires_at
    emit(api(ctx).call("POST", f"/v1/apps/{app_id}/keys", json=body), as_json=as_json)


@keys.command("list")
@click.argument("app_id")
@json_option
@click.pass_context
def keys_list(ctx: click.Context, app_id: str, as_json: bool) -> None:
    emit(
        api(ctx).call("GET", f"/v1/apps/{app_id}/keys")["items"],
        as_json=as_json,
        columns=["id", "name", "hint", "created_at", "expires_at", "revoked_at"],
    )


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    api(ctx).call("DELETE", f"/v1/keys/{key_id}")
    click.echo(f"revoked key {key_id}")


# --- secrets ---------------------------------------------------------------------------------
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
    elif ctype == "basic":
        value = {"password": raw}
    elif ctype == "aws_sigv4":
        value = {"secret_access_key": raw}
    else:
        value = {"token": raw}
    for item in fields:
        name, sep, val = item.partition("=")
        if not sep:
            raise click.UsageError(f"--field {item!r}: expected NAME=VALUE")
        value[name] = val
    return value


@secrets.command("add")
@click.option("--app", "app_id", required=True, help="App id.")
@click.option("--name", required=True)
@click.option("--provider", default=None, help="Provider template slug (see `providers list`).")
@click.option(
    "--type", "ctype", default=None, type=click.Choice(["bearer", "api_key", "basic", "aws_sigv4"])
)
@click.option("--header", default=None, help="Custom injection header name.")
@click.option("--format", "fmt", default=None, help="Header value template, e.g. 'Token {token}'.")
@click.option("--query-param", default=None, help="Send the token as this query parameter.")
@click.option("--host", "hosts", multiple=True, help="Allowed host (repeat).")
@click.option("--param", "params", multiple=True, help="Provider parameter NAME=VALUE.")
@click.option(
    "--field",
    "fields",
    multiple=True,
    help="A non-secret credential field NAME=VALUE (e.g. username=alice).",
)
@click.option("--policy", default=None, help="Policy as JSON.")
@click.option("--aws-region", default=None)
@click.option("--aws-service", default=None)
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--stdin", is_flag=True, help="Read the value from standard input.")
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
    """Store a secret; prints its grant_id."""
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
        body["policy"] = _json_arg(policy, "--policy")
    if aws_region or aws_service:
        body["aws"] = {k: v for k, v in (("region", aws_region), ("service", aws_service)) if v}
    emit(api(ctx).call("POST", "/v1/secrets", json=body), as_json=as_json)


def _json_arg(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise click.UsageError(f"{flag}: not valid JSON") from None


@secrets.command("list")
@click.option("--app", "app_id", default=None)
@json_option
@click.pass_context
def secrets_list(ctx: click.Context, app_id: str | None, as_json: bool) -> None:
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
    emit(api(ctx).call("GET", f"/v1/secrets/{secret_id}"), as_json=as_json)


@secrets.command("rotate")
@click.argument("secret_id")
@click.option(
    "--type", "ctype", default=None, type=click.Choice(["bearer", "api_key", "basic", "aws_sigv4"])
)
@click.option("--field", "fields", multiple=True)
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--stdin", is_flag=True)
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
    api(ctx).call("DELETE", f"/v1/secrets/{secret_id}")
    click.echo(f"deleted secret {secret_id}; its grants are revoked")


# --- grants ----------------------------------------------------------------------------------
@click.group()
def grants() -> None:
    """Grants: show, clone with a TTL, re-police, revoke."""


@grants.command("show")
@click.argument("grant_id")
@json_option
@click.pass_context
def grants_show(ctx: click.Context, grant_id: str, as_json: bool) -> None:
    emit(api(ctx).call("GET", f"/v1/grants/{grant_id}"), as_json=as_json)


@grants.command("clone")
@click.argument("grant_id")
@click.option("--ttl", "ttl_seconds", type=int, default=None, help="Seconds until it expires.")
@click.option("--name", default=None)
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
    body: dict[str, Any] = {}
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    if name:
        body["name"] = name
    if policy:
        body["policy"] = _json_arg(policy, "--policy")
    emit(api(ctx).call("POST", f"/v1/grants/{grant_id}/clone", json=body), as_json=as_json)


@grants.command("update")
@click.argument("grant_id")
@click.option("--policy", required=True, help="The new policy, as JSON.")
@json_option
@click.pass_context
def grants_update(ctx: click.Context, grant_id: str, policy: str, as_json: bool) -> None:
    body = {"policy": _json_arg(policy, "--policy")}
    emit(api(ctx).call("PATCH", f"/v1/grants/{grant_id}", json=body), as_json=as_json)


@grants.command("revoke")
@click.argument("grant_id")
@click.pass_context
def grants_revoke(ctx: click.Context, grant_id: str) -> None:
    api(ctx).call("DELETE", f"/v1/grants/{grant_id}")
    click.echo(f"revoked grant {grant_id} and its clones")


# --- audit -----------------------------------------------------------------------------------
AUDIT_COLUMNS = ["seq", "ts", "event", "outcome", "code", "grant_id", "caller", "method", "url"]


def _filters(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def audit_filters(fn: Any) -> Any:
    for name in ("until", "since", "outcome", "event", "caller", "app", "grant"):
        fn = click.option(f"--{name}", default=None)(fn)
    return fn


@click.group()
def audit() -> None:
    """The audit trail: list, tail, export, verify."""


@audit.command("list")
@audit_filters
@click.option("--limit", type=int, default=50)
@json_option
@click.pass_context
def audit_list(ctx: click.Context, /, limit: int, as_json: bool, **f: Any) -> None:
    params = _filters(
        grant_id=f["grant"],
        app_id=f["app"],
        caller=f["caller"],
        event=f["event"],
        outcome=f["outcome"],
        since=f["since"],
        until=f["until"],
        limit=limit,
    )
    emit(
        api(ctx).call("GET", "/v1/audit", params=params)["items"],
        as_json=as_json,
        columns=AUDIT_COLUMNS,
    )


@audit.command("tail")
@click.option("--interval", type=float, default=2.0)
@click.option("--count", type=int, default=0, help="Stop after this many polls (0: forever).")
@click.pass_context
def audit_tail(ctx: click.Context, interval: float, count: int) -> None:
    """Print new events as they arrive, one JSON line each."""
    client, last, polls = api(ctx), 0, 0
    while True:
        items = client.call("GET", "/v1/audit", params={"limit": 200})["items"]
        for item in reversed(items):
            if item["seq"] > last:
                click.echo(json.dumps(item, default=str))
        last = max([last, *(i["seq"] for i in items)])
        polls += 1
        if count and polls >= count:
            return
        time.sleep(interval)


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl")
@audit_filters
@click.pass_context
def audit_export(ctx: click.Context, /, fmt: str, **f: Any) -> None:
    params = _filters(
        grant_id=f["grant"],
        app_id=f["app"],
        caller=f["caller"],
        event=f["event"],
        outcome=f["outcome"],
        since=f["since"],
        until=f["until"],
    )
    text = api(ctx).call("GET", "/v1/audit/export", params=params)
    click.echo(text or "", nl=False)


@audit.command("verify")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Check the hash chain; exits 1 and names the first bad event when it is broken."""
    report = api(ctx).call("GET", "/v1/audit/verify")
    emit(report, as_json=as_json)
    if not report.get("ok"):
        ctx.exit(1)


# --- providers -------------------------------------------------------------------------------
@click.group()
def providers() -> None:
    """The provider template catalogue (read from the installed package)."""


@providers.command("list")
@click.option("--search", default=None)
@json_option
def providers_list(search: str | None, as_json: bool) -> None:
    from vaultgate.server.providers import load_catalogue

    catalogue = load_catalogue()
    items = [p.to_public() for p in (catalogue.search(search) if search else catalogue.all())]
    emit(items, as_json=as_json, columns=["slug", "name", "credential_type", "hosts"])


@providers.command("show")
@click.argument("slug")
@json_option
def providers_show(slug: str, as_json: bool) -> None:
    from vaultgate.server.errors import VaultError
    from vaultgate.server.providers import load_catalogue

    try:
        emit(load_catalogue().get(slug).to_public(), as_json=as_json)
    except VaultError as exc:
        raise click.ClickException(exc.message) from None
