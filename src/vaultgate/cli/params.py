"""Option types the commands share: durations (``30s``, ``15m``, ``2h``, ``7d``) and moments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from vaultgate.server.durations import DURATION_FORMAT, parse_duration

MOMENT_HELP = "an ISO 8601 date-time (2026-01-31T12:00:00Z) or a duration ago (30m, 2h, 7d)"


class Duration(click.ParamType[int]):
    """Whole seconds, from the one parser the portal uses too."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError:
            self.fail(f"{value!r}: expected {DURATION_FORMAT}", param, ctx)


class Moment(click.ParamType[str]):
    """A point in time for the audit filters, sent on as ISO 8601 with an offset.

    A duration means that long before now, so ``--since 2h`` reads as a person means it.
    """

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        try:
            seconds = parse_duration(text)
        except ValueError:
            pass
        else:
            return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r}: expected {MOMENT_HELP}", param, ctx)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.isoformat()


DURATION = Duration()
MOMENT = Moment()


def expiry_options(fn: Any) -> Any:
    """``--expires-at`` (a moment) or ``--expires-in`` (a duration) for a key's expiry."""
    fn = click.option(
        "--expires-in",
        type=DURATION,
        default=None,
        help="Expire after this long: seconds, or 30s, 15m, 2h, 7d.",
    )(fn)
    return click.option(
        "--expires-at",
        default=None,
        help="Expire at this ISO 8601 date-time with offset (2026-01-31T12:00:00Z).",
    )(fn)


def expiry_body(expires_at: str | None, expires_in: int | None) -> dict[str, str]:
    """The ``expires_at`` field of a key request, from either flag (not both)."""
    if expires_at and expires_in is not None:
        raise click.UsageError("give --expires-at or --expires-in, not both")
    if expires_in is not None:
        return {"expires_at": (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat()}
    return {"expires_at": expires_at} if expires_at else {}
