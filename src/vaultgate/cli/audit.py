"""``vaultgate audit``: list, tail, export and verify the audit trail."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from vaultgate.cli import audit_sinks, audit_stream
from vaultgate.cli.output import emit
from vaultgate.cli.params import MOMENT, MOMENT_HELP
from vaultgate.cli.remote import api, json_option

AUDIT_COLUMNS = ["seq", "ts", "event", "outcome", "code", "grant_id", "caller", "method", "url"]
# Filter flags and the query parameters they become, in the order ``--help`` lists them.
_FILTERS = {
    "grant": "grant_id",
    "app": "app_id",
    "caller": "caller",
    "event": "event",
    "outcome": "outcome",
    "since": "since",
    "until": "until",
    "run_id": "run_id",  # --run-id: a key of the X-Alter-Context the SDK sent
    "thread_id": "thread_id",
    "tool": "tool",
    "provider": "provider",
}
_FILTER_HELP = {
    "grant": "Only events of this grant_id.",
    "app": "Only events of this app id.",
    "caller": "Only events of this caller (the SDK's caller name).",
    "event": "Only this event, e.g. grant:use, grant:deny, key:create, secret:rotate.",
    "outcome": "Only this outcome: allowed, denied, ok or error.",
    "since": f"Only events at or after this time: {MOMENT_HELP}.",
    "until": f"Only events before this time: {MOMENT_HELP}.",
    "run_id": "Only uses whose X-Alter-Context carried this run id.",
    "thread_id": "Only uses whose X-Alter-Context carried this thread id.",
    "tool": "Only uses whose X-Alter-Context named this tool.",
    "provider": "Only events of secrets of this provider (openai, anthropic, ...).",
}


def audit_filters(fn: Any) -> Any:
    # click lists options in the reverse order of their decorators, so add them last first.
    for name in reversed(_FILTERS):
        kind = MOMENT if name in ("since", "until") else None
        flag = f"--{name.replace('_', '-')}"
        fn = click.option(flag, name, default=None, type=kind, help=_FILTER_HELP[name])(fn)
    return fn


def _filter_params(flags: dict[str, Any]) -> dict[str, Any]:
    return {param: flags[flag] for flag, param in _FILTERS.items() if flags[flag] is not None}


@click.group()
def audit() -> None:
    """The audit trail: list, tail, export, verify, and the sinks it streams to."""


@audit.command("list")
@audit_filters
@click.option("--limit", type=int, default=50, help="At most this many events, newest first.")
@json_option
@click.pass_context
def audit_list(ctx: click.Context, /, limit: int, as_json: bool, **f: Any) -> None:
    """List audit events, newest first."""
    params = {**_filter_params(f), "limit": limit}
    emit(
        api(ctx).call("GET", "/v1/audit", params=params)["items"],
        as_json=as_json,
        columns=AUDIT_COLUMNS,
    )


@audit.command("tail")
@click.option("--follow", "-f", is_flag=True, help="Print only events after now, as they arrive.")
@click.option("--lines", "-n", type=int, default=20, help="Without --follow: this many latest.")
@click.option("--interval", type=float, default=2.0, help="Seconds between polls (default 2).")
@click.option("--count", type=int, default=0, help="Stop after this many polls (0: forever).")
@audit_filters
@click.pass_context
def audit_tail(
    ctx: click.Context, /, follow: bool, lines: int, interval: float, count: int, **f: Any
) -> None:
    """Print the latest events, or with --follow every new one as it arrives, as JSON lines."""
    client, params = api(ctx), _filter_params(f)
    if not follow:
        items = client.call("GET", "/v1/audit", params={**params, "limit": lines})["items"]
        for item in reversed(items):
            click.echo(json.dumps(item, default=str))
        return
    last, polls = audit_stream.head_seq(client, params), 0
    click.echo(f"following the audit trail after seq {last}", err=True)
    while not count or polls < count:
        time.sleep(interval)
        for item in audit_stream.newer_than(client, last, params):
            click.echo(json.dumps(item, default=str))
            last = max(last, int(item["seq"]))
        polls += 1


@audit.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    help="Output format: JSON lines, or CSV with a header row (details as JSON).",
)
@audit_filters
@click.pass_context
def audit_export(ctx: click.Context, /, fmt: str, **f: Any) -> None:
    """Write the matching events, oldest first, one JSON object (or CSV row) a line."""
    params = {**_filter_params(f), "format": fmt}
    click.echo(api(ctx).call("GET", "/v1/audit/export", params=params) or "", nl=False)


@audit.command("verify")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Check the hash chain; exits 1 and names the first bad event when it is broken."""
    report = api(ctx).call("GET", "/v1/audit/verify")
    emit(report, as_json=as_json)
    if not report.get("ok"):
        ctx.exit(1)


audit.add_command(audit_sinks.sinks)
