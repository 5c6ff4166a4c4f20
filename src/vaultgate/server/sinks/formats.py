"""The bytes each kind of sink receives for a batch of events.

- webhook: one JSON body ``{"sink", "events": [...]}`` per batch, signed by the caller;
- syslog: one RFC 5424 message per event, framed by octet counting (RFC 6587 3.4.1), the event
  as JSON in MSG and its id and seq as structured data;
- file: one JSON object a line.

Each event carries its ``id`` (the dedup key) and ``seq`` (its order); the fields are the audit
record's, which never holds a credential (audit/events.py).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any, Final

# RFC 5424 6.3.2: a private enterprise number for our SD-ID ("name@number"). 32473 is the
# number RFC 5612 reserves for documentation and examples; operators may filter on the name.
SD_ID: Final = "vaultgate@32473"
_SEVERITY: Final = {"denied": 4, "error": 3}  # warning, error; everything else notice (5)
_ALERT_SEVERITY: Final = 1  # "alert: action must be taken immediately"


def compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def webhook_body(sink_name: str, events: Sequence[dict[str, Any]]) -> bytes:
    return compact({"sink": sink_name, "events": list(events)}).encode()


def jsonl(events: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(compact(event).encode() + b"\n" for event in events)


def _sd_value(text: str) -> str:
    # RFC 5424 6.3.3: '"', '\' and ']' are escaped inside a PARAM-VALUE.
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(text: str, cap: int) -> str:
    """A header field: printable US-ASCII without spaces, or the NILVALUE."""
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)[:cap]
    return cleaned or "-"


def severity(event: dict[str, Any]) -> int:
    if str(event.get("event", "")).startswith("alert:"):
        return _ALERT_SEVERITY
    return _SEVERITY.get(str(event.get("outcome")), 5)


def syslog_message(event: dict[str, Any], *, facility: int, app_name: str, host: str) -> bytes:
    """``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`` (RFC 5424 section 6)."""
    pri = facility * 8 + severity(event)
    ts = str(event["ts"]).replace("+00:00", "Z")
    sd = f'[{SD_ID} id="{_sd_value(str(event["id"]))}" seq="{event["seq"]}"]'
    header = f"<{pri}>1 {ts} {_token(host, 255)} {_token(app_name, 48)} - "
    header += f"{_token(str(event['event']), 32)} {sd} "
    # MSG is UTF-8 with the BOM that RFC 5424 6.4 asks for when it is UTF-8.
    return header.encode() + b"\xef\xbb\xbf" + compact(event).encode()


def octet_frame(message: bytes) -> bytes:
    return str(len(message)).encode() + b" " + message


def syslog_frames(
    events: Sequence[dict[str, Any]], *, facility: int, app_name: str, host: str | None = None
) -> bytes:
    name = host or socket.gethostname()
    return b"".join(
        octet_frame(syslog_message(e, facility=facility, app_name=app_name, host=name))
        for e in events
    )
