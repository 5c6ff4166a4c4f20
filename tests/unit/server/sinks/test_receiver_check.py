"""The README's receiver check against real signed deliveries: forgeries and replays refused,
each attack next to the genuine twin it imitates."""

from __future__ import annotations

import time

import pytest

from support.receivers import readme_verifier
from vaultgate.server.approvals.notify import signature
from vaultgate.server.sinks import formats

SECRET = "receiver-secret-0123456789"
EVENTS = [{"id": "e-1", "seq": 7, "event": "grant:use", "outcome": "allowed"}]
verify = readme_verifier()


def _delivery(stamp: int, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = formats.webhook_body("siem", EVENTS)
    headers = {
        "X-Vaultgate-Timestamp": str(stamp),
        "X-Vaultgate-Signature": signature(secret, str(stamp), body),
    }
    return headers, body


def test_a_genuine_delivery_passes_and_yields_its_events() -> None:
    headers, body = _delivery(int(time.time()))
    assert verify(SECRET.encode(), headers, body) == EVENTS


def test_a_signature_under_another_secret_is_refused() -> None:
    headers, body = _delivery(int(time.time()), secret="attacker-secret-0123456789")
    with pytest.raises(ValueError, match="bad signature"):
        verify(SECRET.encode(), headers, body)


def test_an_edited_body_is_refused() -> None:
    headers, body = _delivery(int(time.time()))
    with pytest.raises(ValueError, match="bad signature"):
        verify(SECRET.encode(), headers, body.replace(b"allowed", b"denied!"))


def test_a_moved_timestamp_breaks_the_signature() -> None:
    headers, body = _delivery(1_000_000)
    headers["X-Vaultgate-Timestamp"] = "1000100"
    with pytest.raises(ValueError, match="bad signature"):
        verify(SECRET.encode(), headers, body, now=1_000_100)


@pytest.mark.parametrize(("age", "fresh"), [(299, True), (301, False), (-301, False)])
def test_a_replay_older_than_five_minutes_is_refused_and_its_fresh_twin_passes(
    age: int, fresh: bool
) -> None:
    headers, body = _delivery(1_000_000)
    if fresh:
        assert verify(SECRET.encode(), headers, body, now=1_000_000 + age) == EVENTS
    else:
        with pytest.raises(ValueError, match="stale"):
            verify(SECRET.encode(), headers, body, now=1_000_000 + age)
