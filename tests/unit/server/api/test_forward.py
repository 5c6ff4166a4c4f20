"""`inject`: what the server puts on a forwarded request, tested without a network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vaultgate.injection.credential import Credential
from vaultgate.injection.rules import AdditionalRule, InjectionRules
from vaultgate.server.api.forward import inject, target_of
from vaultgate.server.egress.pipeline import Authorized
from vaultgate.server.egress.urls import parse_target
from vaultgate.server.errors import InvalidInput, Unprocessable
from vaultgate.server.secrets.grants import GrantContext

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _auth(rules: InjectionRules, credential: Credential) -> Authorized:
    grant = GrantContext(
        grant_id="00000000-0000-4000-8000-000000000001",
        app_id="app",
        secret_id="secret",
        secret_version=1,
        credential_type=credential.type,
        provider=None,
        rules=rules,
        hosts=(),
        aws=None,
        policies=(),
        revoked=False,
        expires_at=None,
    )
    return Authorized(grant, credential, "event")


TELEGRAM = InjectionRules(path_prefix="/bot{token}")


def test_a_path_prefix_puts_the_key_in_front_of_the_callers_path() -> None:
    auth = _auth(TELEGRAM, Credential("api_key", {"token": "123:ABC"}))
    target, _ = inject(
        auth, "GET", parse_target("https://api.telegram.org/getMe?x=1"), [], [], None, now=NOW
    )
    assert target.path == "/bot123:ABC/getMe"
    assert target.query == "x=1"


def test_a_key_cannot_move_the_request_through_the_path_prefix() -> None:
    auth = _auth(TELEGRAM, Credential("api_key", {"token": "1/../../admin?#"}))
    target, _ = inject(
        auth, "GET", parse_target("https://api.telegram.org/getMe"), [], [], None, now=NOW
    )
    assert target.path == "/bot1%2F..%2F..%2Fadmin%3F%23/getMe"
    assert target.query == ""


def test_a_dot_segment_key_is_refused_with_a_422_that_names_no_value() -> None:
    auth = _auth(TELEGRAM, Credential("api_key", {"token": ".."}))
    with pytest.raises(Unprocessable) as caught:
        inject(auth, "GET", parse_target("https://api.telegram.org/x"), [], [], None, now=NOW)
    assert caught.value.code == "injection_failed"
    assert caught.value.field == "injection.path_prefix"


def test_no_prefix_leaves_the_path_as_normalised() -> None:
    rules = InjectionRules(header="Authorization", format="Bearer {token}")
    auth = _auth(rules, Credential("bearer", {"token": "t"}))
    target, headers = inject(
        auth,
        "GET",
        parse_target("https://h.example/a/./b/../c"),
        [("Authorization", "Bearer caller"), ("Cookie", "c=1"), ("X-Api-Key", "vault-key")],
        [],
        None,
        now=NOW,
    )
    assert target.path == "/a/c"
    assert dict(headers) == {"authorization": "Bearer t"}


def test_an_injected_query_replaces_the_callers_value() -> None:
    rules = InjectionRules(additional=(AdditionalRule("query", "key", "{token}"),))
    auth = _auth(rules, Credential("api_key", {"token": "secret"}))
    target, _ = inject(
        auth, "GET", parse_target("https://h.example/a?key=mine&q=1"), [], [], None, now=NOW
    )
    assert target.query == "q=1&key=secret"


@pytest.mark.parametrize(
    "url",
    [
        "https://API.Example.com./v1/x?q=1",
        "http://127.0.0.1:8080/a/../b",
        "https://h.example/" + "p" * 3000,  # past the cached length: parsed every time
    ],
)
def test_target_of_is_parse_target_every_time(url: str) -> None:
    assert target_of(url) == parse_target(url)
    assert target_of(url) == parse_target(url)


@pytest.mark.parametrize("url", ["https://user@h.example/", "ftp://h.example/", "https://h\\x/"])
def test_target_of_refuses_a_bad_url_every_time(url: str) -> None:
    for _ in range(2):
        with pytest.raises(InvalidInput):
            target_of(url)
