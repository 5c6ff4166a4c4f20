"""``vaultgate audit sinks``: where the trail is streamed (webhook, syslog, file), and its lag.

A webhook's signing secret is read from a prompt or standard input (``--secret-stdin``), never
from argv, and never printed back.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from vaultgate.cli.client import ApiError
from vaultgate.cli.output import emit
from vaultgate.cli.remote import api, json_arg, json_option

COLUMNS = [
    "name",
    "kind",
    "enabled",
    "cursor",
    "lag_events",
    "lag_seconds",
    "attempts",
    "last_error",
]


def _row(sink: dict[str, Any]) -> dict[str, Any]:
    return {**sink, **sink["state"]}


def _secret(stdin: bool) -> str:
    if stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("webhook signing secret", hide_input=True))


def _filter(
    events: tuple[str, ...],
    outcomes: tuple[str, ...],
    grants: tuple[str, ...],
    providers: tuple[str, ...],
) -> dict[str, list[str]]:
    return {
        "events": list(events),
        "outcomes": list(outcomes),
        "grant_ids": list(grants),
        "providers": list(providers),
    }


def filter_options(fn: Any) -> Any:
    for flag, name, text in reversed(
        [
            ("--event", "events", "Only this event (repeatable; a trailing * matches a prefix)."),
            (
                "--outcome",
                "outcomes",
                "Only this outcome: allowed, denied, ok, error (repeatable).",
            ),
            ("--grant", "grants", "Only events of this grant_id (repeatable)."),
            ("--provider", "providers", "Only events of this provider's secrets (repeatable)."),
        ]
    ):
        fn = click.option(flag, name, multiple=True, help=text)(fn)
    return fn


@click.group()
def sinks() -> None:
    """Audit sinks: stream the trail to a signed webhook, syslog (RFC 5424, TCP/TLS) or a file."""


@sinks.command("list")
@json_option
@click.pass_context
def sinks_list(ctx: click.Context, as_json: bool) -> None:
    """Every sink with its delivery state: cursor, lag, attempts, last error."""
    items = api(ctx).call("GET", "/v1/audit/sinks")["items"]
    emit(items if as_json else [_row(s) for s in items], as_json=as_json, columns=COLUMNS)


@sinks.command("show")
@click.argument("ref")
@json_option
@click.pass_context
def sinks_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One sink (by name or id)."""
    emit(api(ctx).call("GET", f"/v1/audit/sinks/{ref}"), as_json=as_json)


@sinks.command("add")
@click.argument("name")
@click.option("--webhook", "url", default=None, help="An https URL: a signed JSON POST a batch.")
@click.option(
    "--syslog",
    "syslog",
    default=None,
    help="HOST:PORT of an RFC 5424 receiver (TCP; TLS with --config '{\"tls\": true}').",
)
@click.option("--file", "path", default=None, help="An absolute path: one JSON object a line.")
@click.option("--secret-stdin", is_flag=True, help="Read the webhook secret from standard input.")
@click.option("--config", "config_json", default=None, help="More config, JSON (tls, ca_file...).")
@click.option("--lead", "lead", type=int, default=None, help="Expiry alert lead time (seconds).")
@click.option("--from-beginning", is_flag=True, help="Send the whole trail first, not only new.")
@filter_options
@json_option
@click.pass_context
def sinks_add(
    ctx: click.Context,
    /,
    name: str,
    url: str | None,
    syslog: str | None,
    path: str | None,
    secret_stdin: bool,
    config_json: str | None,
    lead: int | None,
    from_beginning: bool,
    as_json: bool,
    **f: Any,
) -> None:
    """Add a sink: exactly one of --webhook, --syslog, --file."""
    chosen = [(k, v) for k, v in (("webhook", url), ("syslog", syslog), ("file", path)) if v]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --webhook, --syslog, --file")
    kind, where = chosen[0]
    config: dict[str, Any] = json_arg(config_json, "--config") if config_json else {}
    if kind == "webhook":
        config["url"] = where
    elif kind == "file":
        config["path"] = where
    else:
        host, _, port = where.rpartition(":")
        if not host or not port.isdigit():
            raise click.UsageError("--syslog: expected HOST:PORT")
        config.update(host=host, port=int(port))
    body: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "config": config,
        "filter": _filter(f["events"], f["outcomes"], f["grants"], f["providers"]),
        "start": "beginning" if from_beginning else "now",
    }
    if lead is not None:
        body["alert_lead_seconds"] = lead
    if kind == "webhook":
        body["secret"] = _secret(secret_stdin)
    emit(api(ctx).call("POST", "/v1/audit/sinks", json=body), as_json=as_json)


@sinks.command("set")
@click.argument("ref")
@click.option("--enable/--disable", "enabled", default=None, help="Deliver, or pause.")
@click.option("--rotate-secret", is_flag=True, help="Read a new webhook secret (prompt/stdin).")
@click.option("--lead", "lead", type=int, default=None, help="Expiry alert lead time (seconds).")
@click.option(
    "--config",
    "config_json",
    default=None,
    help="Config keys to change, JSON, merged into the current config; null removes a key.",
)
@json_option
@click.pass_context
def sinks_set(
    ctx: click.Context,
    ref: str,
    enabled: bool | None,
    rotate_secret: bool,
    lead: int | None,
    config_json: str | None,
    as_json: bool,
) -> None:
    """Pause, resume, re-key, reconfigure or change the lead time of a sink."""
    body: dict[str, Any] = {}
    if enabled is not None:
        body["enabled"] = enabled
    if lead is not None:
        body["alert_lead_seconds"] = lead
    if rotate_secret:
        body["secret"] = _secret(False)
    if config_json is None:
        emit(api(ctx).call("PATCH", f"/v1/audit/sinks/{ref}", json=body), as_json=as_json)
        return
    changes = json_arg(config_json, "--config")
    if not isinstance(changes, dict):
        raise click.UsageError("--config: expected a JSON object")
    # The API takes a sink's whole config: the keys not named keep their current values. The
    # write names the version it merged into (If-Match), so a change made by someone else in
    # between is read again and merged, never overwritten.
    for _ in range(MERGE_ATTEMPTS):
        # Uncompressed: a proxy that compresses an answer marks its tag weak (nginx does), and
        # If-Match compares strongly.
        identity = {"Accept-Encoding": "identity"}
        sink, headers = api(ctx).exchange("GET", f"/v1/audit/sinks/{ref}", headers=identity)
        body["config"] = _merged_config(sink, changes)
        # A vault from before entity tags sends none: the write is then unconditional. The
        # vault's own tags are always strong: one weakened on the way still names its version.
        tag = headers.get("etag")
        based_on = {"If-Match": tag.removeprefix("W/")} if tag else {}
        try:
            answer = api(ctx).call("PATCH", f"/v1/audit/sinks/{ref}", json=body, headers=based_on)
        except ApiError as exc:
            if exc.status != 412:
                raise
            continue
        emit(answer, as_json=as_json)
        return
    raise click.ClickException(
        f"sink {ref} changed {MERGE_ATTEMPTS} times while this change was being merged into it; "
        "nothing was written, try again"
    )


MERGE_ATTEMPTS = 5


def _merged_config(sink: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` merged into the sink's config; a null value removes its key."""
    current = dict(sink.get("config") or {})
    from vaultgate.server.sinks.models import default_syslog_port

    # A syslog port left at its default follows TLS on or off, as the API would choose it.
    default_port = default_syslog_port(bool(current.get("tls")))
    syslog = sink.get("kind") == "syslog"
    if syslog and "port" not in changes and current.get("port") == default_port:
        current.pop("port", None)
    merged = {**current, **changes}
    return {key: value for key, value in merged.items() if value is not None}


@sinks.command("remove")
@click.argument("ref")
@click.pass_context
def sinks_remove(ctx: click.Context, ref: str) -> None:
    """Delete a sink (its cursor goes with it)."""
    api(ctx).call("DELETE", f"/v1/audit/sinks/{ref}")
    click.echo(f"removed sink {ref}")
