import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vaultgate.injection.credential import Credential
from vaultgate.server.audit.events import (
    ALLOWED,
    GRANT_USE,
    REASON_CAP,
    TRUNCATED,
    AuditEvent,
    clean_text,
    new_event_id,
    new_id,
    redact_url,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("line\nforged", "line\\x0aforged"),
        ("a\r\nb", "a\\x0d\\x0ab"),
        ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),
        ("nul\x00byte", "nul\\x00byte"),
        ("del\x7f c1\x85\x9b", "del\\x7f c1\\x85\\x9b"),
        ("sep\u2028para\u2029", "sep\\u2028para\\u2029"),
        ("bidi\u202egnp.exe\u2066\u200f", "bidi\\u202egnp.exe\\u2066\\u200f"),
        ("lone\ud800surrogate", "lone\\ud800surrogate"),
        ("back\\x0aslash", "back\\\\x0aslash"),
    ],
)
def test_clean_text_escapes_what_could_forge_or_hide(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_clean_text_keeps_ordinary_text_including_non_ascii() -> None:
    text = "AI model inference — résumé 日本語 ✓ 'quoted' {braces}"
    assert clean_text(text) == text


def test_clean_text_escapes_tabs_too() -> None:
    assert clean_text("a\tb") == "a\\x09b"


def test_clean_text_output_has_no_line_breaks_for_any_input() -> None:
    nasty = "".join(chr(c) for c in range(0x00, 0x2100))
    cleaned = clean_text(nasty, 100_000)
    assert len(cleaned.splitlines()) == 1
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in cleaned)


def test_clean_text_caps_a_megabyte_reason_with_a_marker() -> None:
    cleaned = clean_text("x" * 1_000_000)
    assert len(cleaned) == REASON_CAP
    assert cleaned.endswith(TRUNCATED)


def test_clean_text_caps_escaped_output_without_splitting_an_escape() -> None:
    cleaned = clean_text("\n" * 1_000_000)
    assert len(cleaned) <= REASON_CAP
    body = cleaned.removesuffix(TRUNCATED)
    assert cleaned.endswith(TRUNCATED)
    assert body == "\\x0a" * (len(body) // 4)


def test_clean_text_leaves_text_at_the_cap_whole() -> None:
    assert clean_text("y" * REASON_CAP) == "y" * REASON_CAP
    assert clean_text("y" * (REASON_CAP + 1)).endswith(TRUNCATED)


def test_new_fills_id_and_ts_and_cleans_reason_caller_url() -> None:
    event = AuditEvent.new(
        event=GRANT_USE,
        outcome=ALLOWED,
        now=NOW.astimezone(timezone(timedelta(hours=5))),
        reason="ok\nFAKE grant:use allowed",
        caller="agent\x1b[31m",
        url="https://api.example.com/v1?q=\r\n",
    )
    assert len(event.id) == 36
    assert event.ts == NOW
    assert event.ts.tzinfo == UTC
    assert event.reason == "ok\\x0aFAKE grant:use allowed"
    assert event.caller == "agent\\x1b[31m"
    assert event.url == "https://api.example.com/v1?q=\\x0d\\x0a"


def test_new_gives_each_event_its_own_id() -> None:
    ids = {AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, now=NOW).id for _ in range(50)}
    assert len(ids) == 50


def test_event_ids_are_version_7_uuids_in_canonical_text() -> None:
    for _ in range(200):
        text = AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, now=NOW).id
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_event_ids_sort_in_the_order_of_their_milliseconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Time-ordered ids keep the unique index on audit_events.id growing at its end.
    instants = iter(range(1_700_000_000_000_000_000, 1_700_000_000_050_000_000, 1_000_000))
    monkeypatch.setattr("vaultgate.server.audit.events._time_ns", lambda: next(instants))
    ids = [new_event_id() for _ in range(50)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    first = uuid.UUID(ids[0])
    assert first.int >> 80 == 1_700_000_000_000  # the 48 leading bits: Unix milliseconds


def test_event_ids_within_one_millisecond_differ_in_their_random_bits() -> None:
    ids = {new_event_id() for _ in range(1000)}
    assert len(ids) == 1000


def test_new_ids_are_version_4_uuids_in_canonical_text() -> None:
    for _ in range(200):
        text = new_id()
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert str(parsed) == text


def test_new_cleans_text_only_where_needed_and_keeps_clean_text_as_is() -> None:
    clean = AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, caller="agent", reason="plain é")
    assert (clean.caller, clean.reason) == ("agent", "plain é")
    mixed = AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, caller="agent", reason="a\\b", mode=7)
    assert (mixed.caller, mixed.reason, mixed.mode) == ("agent", "a\\\\b", "7")


def test_new_caps_fields_to_their_columns() -> None:
    event = AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, caller="c" * 10_000, reason="r" * 5000)
    assert event.caller is not None
    assert len(event.caller) == 255
    assert event.reason is not None
    assert len(event.reason) == REASON_CAP


@pytest.mark.parametrize(
    "bad",
    [
        {"ts": datetime(2025, 1, 1)},
        {"outcome": "maybe"},
        {"event": ""},
        {"reason": "raw\nnewline"},
        {"caller": "x" * 256},
        {"latency_ms": 2**40},
        {"upstream_status": "200"},
        {"caller": 42},
        {"method": "GET", "url": "ok", "mode": "m" * 17},
        {"code": "ok", "request_id": "id\u2028"},
    ],
)
def test_direct_construction_refuses_what_the_store_would_reject(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"id": "i", "ts": NOW, "event": GRANT_USE, "outcome": ALLOWED}
    fields.update(bad)
    with pytest.raises(ValueError):
        AuditEvent(**fields)  # type: ignore[arg-type]


def test_details_are_cleaned_and_json_safe() -> None:
    event = AuditEvent.new(
        event=GRANT_USE,
        outcome=ALLOWED,
        details={"note\n": "a\x1bb", "n": [1, 2.5, float("inf"), None, True], "t": ("x",)},
    )
    assert event.details == {
        "note\\x0a": "a\\x1bb",
        "n": [1, 2.5, "inf", None, True],
        "t": ["x"],
    }
    json.dumps(event.details, allow_nan=False)


def test_details_refuse_a_credential_instead_of_copying_it() -> None:
    credential = Credential("bearer", {"token": "sk-live-supersecret"})
    with pytest.raises(TypeError) as info:
        AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, details={"c": credential})
    assert "supersecret" not in str(info.value)


def test_redact_url_hides_injected_query_values_only() -> None:
    url = "https://maps.example.com/geo?key=AIzaSECRET&address=Main%20St&KEY=x"
    redacted = redact_url(url, ["key"])
    assert "AIzaSECRET" not in redacted
    assert "address=Main+St" in redacted
    assert redacted.startswith("https://maps.example.com/geo?key=[redacted]")


def test_redact_url_without_names_is_the_identity() -> None:
    url = "https://api.example.com/v1?a=1&b=%2F"
    assert redact_url(url, []) == url


@pytest.mark.parametrize("latency", [2**40, -(2**40), "12", 1.5, True])
def test_new_leaves_out_numbers_the_store_cannot_hold(latency: object) -> None:
    event = AuditEvent.new(
        event=GRANT_USE, outcome=ALLOWED, latency_ms=latency, upstream_status=200
    )
    assert event.latency_ms is None
    assert event.upstream_status == 200
