"""What every command that talks to a running vault shares: its client, ``--json``, JSON flags.

The command groups live one per module (``apps``, ``secrets``, ``grants``, ``audit``,
``providers``); ``main`` registers them.
"""

from __future__ import annotations

import json
from typing import Any

import click

from vaultgate.cli.client import ApiClient

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def api(ctx: click.Context) -> ApiClient:
    return ApiClient(ctx.obj["env"], ctx.obj.get("url"), ctx.obj.get("admin_key"))


def json_arg(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise click.UsageError(f"{flag}: not valid JSON") from None
