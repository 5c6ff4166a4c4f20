"""Input the parser cannot take is a 400 with a message, and a bad export filter a 422 up front.

Never a 500, and never a 200 whose stream then breaks halfway.
"""

from __future__ import annotations

import json

import pytest

from support import Vault
from support.injection import error_of, sdk_call

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_IN_OBJECT = b'{"grant_id":"g","request":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
UNPARSEABLE = {
    "deeply-nested": DEEP,
    "deeply-nested-field": DEEP_IN_OBJECT,
    "truncated": b'{"grant_id":',
    "not-utf8": b"\xff\xfe{}",
    "an-array": b"[1,2]",
    "a-string": b'"grant"',
}


@pytest.mark.parametrize("path", ["/sdk/token", "/sdk/proxy"])
@pytest.mark.parametrize("body", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
def test_sdk_bodies_the_parser_cannot_take_are_400(
    sqlite_vault: Vault, path: str, body: bytes
) -> None:
    _, key = sqlite_vault.make_app_key()
    answer = sdk_call(sqlite_vault, key, path, body)
    assert answer.status_code == 400, answer.text
    assert error_of(answer) == "invalid_json"
    assert answer.json()["detail"]["message"]


def test_a_well_formed_sdk_body_is_parsed(sqlite_vault: Vault) -> None:
    """The twin: the same route with a valid object gets as far as the grant lookup."""
    _, key = sqlite_vault.make_app_key()
    body = {"grant_id": "no-such-grant", "request": {"method": "GET", "url": "http://x/"}}
    answer = sdk_call(sqlite_vault, key, "/sdk/token", json.dumps(body).encode())
    assert answer.status_code == 404
    assert error_of(answer) == "grant_not_found"


@pytest.mark.parametrize("body", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
def test_management_bodies_the_parser_cannot_take_are_400(sqlite_vault: Vault, body: bytes) -> None:
    with sqlite_vault.admin() as admin:
        answer = admin.post("/v1/apps", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"]["message"]


BAD_FILTERS = {
    "outcome": {"outcome": "maybe"},
    "since": {"since": "2030-01-01T00:00:00"},  # no timezone: ambiguous, so refused
    "until": {"until": "2030-01-01T00:00:00"},
}


@pytest.mark.parametrize(("field", "params"), BAD_FILTERS.items(), ids=BAD_FILTERS.keys())
def test_export_refuses_a_bad_filter_before_streaming(
    sqlite_vault: Vault, field: str, params: dict[str, str]
) -> None:
    with sqlite_vault.admin() as admin:
        admin.post("/v1/apps", json={"name": "exported"})
        answer = admin.get("/v1/audit/export", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == field
    assert field in answer.json()["detail"]["message"]


def test_export_with_good_filters_streams_the_matching_events(sqlite_vault: Vault) -> None:
    with sqlite_vault.admin() as admin:
        admin.post("/v1/apps", json={"name": "exported"})
        params = {"outcome": "ok", "since": "2000-01-01T00:00:00Z"}
        with admin.stream("GET", "/v1/audit/export", params=params) as answer:
            assert answer.status_code == 200
            lines = [json.loads(line) for line in answer.iter_lines() if line]
    assert lines
    assert all(line["outcome"] == "ok" for line in lines)
