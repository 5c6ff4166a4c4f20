"""One duration parser for the CLI and the portal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import pytest

from vaultgate.cli.params import DURATION, MOMENT
from vaultgate.server.durations import parse_duration
from vaultgate.server.portal import forms


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), (" 2H ", 7200)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert DURATION.convert(text, None, None) == seconds
    assert forms.ttl_seconds(text) == seconds  # the portal reads them the same way


@pytest.mark.parametrize("text", ["", "soon", "-5", "1w", "1.5h", "2h30m", "h"])
def test_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match=r"30s, 15m, 2h, 7d"):
        parse_duration(text)
    with pytest.raises(click.BadParameter, match=r"30s, 15m, 2h, 7d"):
        DURATION.convert(text, None, None)


def test_a_moment_is_iso_8601_or_a_duration_ago() -> None:
    assert MOMENT.convert("2026-01-31T12:00:00Z", None, None) == "2026-01-31T12:00:00+00:00"
    assert MOMENT.convert("2026-01-31T12:00:00", None, None) == "2026-01-31T12:00:00+00:00"
    before = datetime.now(UTC)
    ago = datetime.fromisoformat(MOMENT.convert("2h", None, None))
    assert (
        before - timedelta(hours=2, minutes=1)
        < ago
        <= before - timedelta(hours=2) + timedelta(minutes=1)
    )
    with pytest.raises(click.BadParameter, match="ISO 8601"):
        MOMENT.convert("yesterday", None, None)
