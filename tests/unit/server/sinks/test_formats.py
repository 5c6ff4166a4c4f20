"""Wire formats: RFC 5424 messages in RFC 6587 octet-counted frames, JSON lines, the filter."""

from __future__ import annotations

import json
import re

import pytest

from vaultgate.server.sinks import EventFilter, formats

EVENT = {
    "id": "0b6e7d8c-1111-4222-8333-944455556666",
    "seq": 42,
    "ts": "2026-06-01T12:00:00.123456+00:00",
    "event": "grant:deny",
    "outcome": "denied",
    "grant_id": "g-1",
    "provider": "openai",
    "reason": 'quote " bracket ] backslash \\',
}
# RFC 5424 section 6: PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD
RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) "
    rb"(?P<proc>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) (?P<sd>\[.*?[^\\]\]) \xef\xbb\xbf(?P<msg>.*)$",
    re.DOTALL,
)


def test_a_syslog_frame_is_octet_counted_rfc5424_with_the_event_as_msg() -> None:
    frame = formats.syslog_frames([EVENT], facility=13, app_name="vaultgate", host="vault-1")
    length, _, message = frame.partition(b" ")
    assert int(length) == len(message)
    parsed = RFC5424.match(message)
    assert parsed is not None, message
    assert int(parsed["pri"]) == 13 * 8 + 4  # log audit, warning (a denial)
    assert parsed["ts"] == b"2026-06-01T12:00:00.123456Z"
    assert parsed["host"] == b"vault-1" and parsed["msgid"] == b"grant:deny"
    assert parsed["sd"] == f'[vaultgate@32473 id="{EVENT["id"]}" seq="42"]'.encode()
    assert json.loads(parsed["msg"]) == EVENT


def test_alerts_are_syslog_severity_alert() -> None:
    message = formats.syslog_message(
        {**EVENT, "event": "alert:expiry", "outcome": "ok"}, facility=13, app_name="v", host="h"
    )
    assert message.startswith(b"<105>1 ")  # 13 * 8 + 1


def test_jsonl_is_one_object_a_line() -> None:
    lines = formats.jsonl([EVENT, {**EVENT, "seq": 43}]).decode().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [42, 43]


@pytest.mark.parametrize(
    ("spec", "matches"),
    [
        ({}, True),
        ({"events": ["grant:deny"]}, True),
        ({"events": ["grant:*"]}, True),
        ({"events": ["alert:*"]}, False),
        ({"outcomes": ["allowed"]}, False),
        ({"grant_ids": ["g-1"], "providers": ["openai"]}, True),
        ({"grant_ids": ["g-2"]}, False),
        ({"providers": ["anthropic"]}, False),
    ],
)
def test_a_filter_keeps_an_event_only_when_every_list_allows_it(
    spec: dict[str, list[str]], matches: bool
) -> None:
    assert EventFilter.model_validate(spec).matches(EVENT) is matches
