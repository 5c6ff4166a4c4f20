"""Reading the official client's Connect body and the end user it names; the dotted account
path of a template."""

from __future__ import annotations

import base64
import json

import pytest

from vaultgate.server.errors import InvalidInput, Unprocessable
from vaultgate.server.oauth.exchange import dotted
from vaultgate.server.oauth.requests import app_user_of, parse_session_request


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.{'s' * 40}"


def test_a_jwt_names_its_subject_and_a_plain_string_itself() -> None:
    assert app_user_of(jwt({"sub": "user-42", "email": "a@b"})) == "user-42"
    assert app_user_of("user-42") == "user-42"
    assert app_user_of(None) is None


@pytest.mark.parametrize("bad", ["", "x" * 300, "tab\there", jwt({"email": "no-sub"})])
def test_a_user_that_names_no_one_is_a_422_naming_the_field(bad: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        app_user_of(bad)
    assert raised.value.field == "user_token"


def test_the_clients_body_is_read_and_options_not_served_are_refused() -> None:
    body = {"allowed_providers": ["GitHub ", "github"], "return_url": None, "metadata": None}
    req = parse_session_request({**body, "user_token": "u-1"})
    assert (req.providers, req.app_user_id, req.direct) == (["github"], "u-1", False)
    with pytest.raises(InvalidInput) as raised:
        parse_session_request({**body, "agent": "helper"})
    assert (raised.value.code, raised.value.field) == ("not_supported", "agent")
    with pytest.raises(Unprocessable):
        parse_session_request({**body, "surprise": 1})
    with pytest.raises(Unprocessable):
        parse_session_request({**body, "return_url": "javascript:alert(1)"})


def test_dotted_reads_scalars_only() -> None:
    answer = {"team": {"id": "T1", "name": "Acme"}, "id": 7, "flag": True, "list": [1]}
    assert dotted(answer, "team.id") == "T1"
    assert dotted(answer, "id") == "7"
    assert dotted(answer, "flag") is None
    assert dotted(answer, "list") is None
    assert dotted(answer, "team.missing") is None
    assert dotted(answer, None) is None
