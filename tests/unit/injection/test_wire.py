"""The Alter wire form of a rule set: the official SDK must inject exactly what apply_rules does.

Three oracles: a transcription of the SDK's algorithm (protocol section 3.4), the SDK's own
validators, and the real official client run against a loopback server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import alter_sdk
import httpx
import pytest
from alter_sdk._aws_sig_v4 import sign_aws_request
from alter_sdk.client import (
    _TokenResponsePayload,
    _validate_token_injection_metadata,
    _validate_token_response_contract,
)

from vaultgate.injection.credential import Credential
from vaultgate.injection.rules import (
    AdditionalRule,
    InjectionRuleError,
    InjectionRules,
    apply_rules,
    default_rules,
    injected_header_names,
)
from vaultgate.injection.sigv4 import AwsCredentials, SigV4Request, sign_headers
from vaultgate.injection.wire import GRANT_HEADER, apply_wire, from_wire, injected_names, to_wire

GRANT = str(uuid.uuid4())
API_KEY = "alter_key_" + "Z" * 40
TOKEN = "sk-live-abcdef0123456789"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

if TYPE_CHECKING:
    from tests.unit.injection.conftest import Recorded, RecordingServer


def header(name: str, value: str) -> AdditionalRule:
    return AdditionalRule("header", name, value)


def query(name: str, value: str) -> AdditionalRule:
    return AdditionalRule("query", name, value)


API_KEY_CRED = Credential("api_key", {"token": TOKEN})
SHAPES: dict[str, tuple[Credential, InjectionRules]] = {
    "bearer": (Credential("bearer", {"token": TOKEN}), default_rules("bearer")),
    "api_key_custom_header": (API_KEY_CRED, InjectionRules(header="X-Api-Key", format="{token}")),
    "token_prefix": (API_KEY_CRED, InjectionRules(header="Authorization", format="Token {token}")),
    "pagerduty": (
        API_KEY_CRED,
        InjectionRules(header="Authorization", format="Token token={token}"),
    ),
    "raw": (API_KEY_CRED, InjectionRules(header="Authorization", format="{token}")),
    "basic": (
        Credential("basic", {"username": "AC123", "password": "auth:tok"}),
        default_rules("basic"),
    ),
    "basic_empty_password": (
        Credential("basic", {"username": "sk_x", "password": ""}),
        default_rules("basic"),
    ),
    "multi_header": (
        API_KEY_CRED,
        InjectionRules(
            header="x-api-key",
            format="{token}",
            additional=(header("anthropic-version", "2023-06-01"),),
        ),
    ),
    "same_key_twice": (
        API_KEY_CRED,
        InjectionRules(
            header="Authorization",
            format="Bearer {token}",
            additional=(header("apikey", "{token}"),),
        ),
    ),
    "two_fields": (
        Credential("api_key", {"token": TOKEN, "app_key": "app-key-123"}),
        InjectionRules(
            header="DD-API-KEY",
            format="{token}",
            additional=(header("DD-APPLICATION-KEY", "{app_key}"),),
        ),
    ),
    "query_only": (API_KEY_CRED, InjectionRules(additional=(query("key", "{token}"),))),
    "header_and_query": (
        Credential("api_key", {"token": TOKEN, "group": "grp-9"}),
        InjectionRules(
            header="Authorization",
            format="Bearer {token}",
            additional=(header("group-id", "{group}"), query("GroupId", "{group}")),
        ),
    ),
    "template_over_username_password": (
        Credential("basic", {"username": "ann@example.com", "password": "zd-token"}),
        InjectionRules(header="X-Zendesk-Auth", format="{username}/token:{password}"),
    ),
    "main_header_the_sdk_refuses": (
        API_KEY_CRED,
        InjectionRules(header="X_Legacy_Key", format="{token}"),
    ),
    "long_format": (
        API_KEY_CRED,
        InjectionRules(header="Authorization", format="K" * 200 + " {token}"),
    ),
}
CALLER_HEADERS = {"Authorization": "Bearer callers-own", "Accept": "application/json"}
CALLER_QUERY = {"page": "2"}


def official_sdk_injection(payload: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Protocol section 3.4, transcribed: what the official SDK sends for this payload."""
    token = payload["access_token"]
    fmt = payload.get("injection_format") or "Bearer {token}"
    headers = dict(CALLER_HEADERS)
    headers[payload.get("injection_header") or "Authorization"] = fmt.replace("{token}", token, 1)
    params = dict(CALLER_QUERY)
    credentials = payload.get("additional_credentials") or {}
    for rule in payload.get("additional_injections") or []:
        source = rule["value_source"]
        value = token if source == "token" else credentials.get(source.split(".", 1)[1])
        if not value:
            continue
        if rule["target"] == "header":
            headers[rule["key"]] = value
        else:
            params = {**params, rule["key"]: value}
    return headers, params


def expected_injection(
    cred: Credential, rules: InjectionRules
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    headers = httpx.Headers(CALLER_HEADERS)
    params = list(CALLER_QUERY.items())
    apply_rules(rules, cred, headers, params)
    return {k.lower(): v for k, v in headers.items()}, params


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() != GRANT_HEADER.lower()}


def official_sdk_accepts(payload: Mapping[str, Any]) -> None:
    data = {"grant_id": GRANT, **payload}
    _validate_token_response_contract(data)
    _validate_token_injection_metadata(data)
    _TokenResponsePayload.model_validate(data)


@pytest.mark.parametrize("shape", SHAPES)
def test_official_algorithm_injects_what_apply_rules_does(shape: str) -> None:
    cred, rules = SHAPES[shape]
    payload = to_wire(rules, cred, grant_id=GRANT)
    official_sdk_accepts(payload)
    sdk_headers, sdk_query = official_sdk_injection(payload)
    want_headers, want_query = expected_injection(cred, rules)
    # Compared on the names the rules inject. (The official SDK leaves a caller's own
    # Authorization in place when the credential goes into another header; apply_rules removes
    # it, a stricter rule that only requests injected by vaultgate itself get.)
    sdk = lower(sdk_headers)
    for name in injected_header_names(rules):
        assert sdk.get(name) == want_headers.get(name), name
    assert sorted(sdk_query.items()) == sorted(want_query)


@pytest.mark.parametrize("shape", SHAPES)
def test_apply_wire_injects_what_apply_rules_does(shape: str) -> None:
    cred, rules = SHAPES[shape]
    payload = json.loads(json.dumps(to_wire(rules, cred, grant_id=GRANT)))  # as received
    request = httpx.Request(
        "GET", "https://api.example.com/v1/items", params=CALLER_QUERY, headers=CALLER_HEADERS
    )
    sent = apply_wire(payload, request)
    want_headers, want_query = expected_injection(cred, rules)
    got = {k.lower(): v for k, v in sent.headers.items()}
    assert {k: got.get(k) for k in want_headers} == want_headers
    assert GRANT_HEADER.lower() not in got  # only the official SDK needs it
    assert "callers-own" not in json.dumps(got)
    assert sorted(sent.url.params.multi_items()) == sorted(want_query)
    assert sent.url.path == "/v1/items"
    assert injected_names(payload) == (
        injected_header_names(rules),
        {rule.name for rule in rules.additional if rule.target == "query"},
    )


def test_basic_sends_the_encoded_pair_as_the_token() -> None:
    payload = to_wire(
        default_rules("basic"), Credential("basic", {"username": "u", "password": "p"})
    )
    assert payload["access_token"] == "dTpw"
    assert payload["injection_format"] == "Basic {token}"


def test_single_placeholder_formats_send_the_raw_token() -> None:
    payload = to_wire(
        InjectionRules(header="Authorization", format="Token token={token}"), API_KEY_CRED
    )
    assert (payload["access_token"], payload["injection_format"]) == (TOKEN, "Token token={token}")
    assert payload["additional_credentials"] is None


def test_query_only_uses_the_grant_header_and_needs_a_grant_id() -> None:
    rules = InjectionRules(additional=(query("key", "{token}"),))
    payload = to_wire(rules, API_KEY_CRED, grant_id=GRANT)
    assert payload["injection_header"] == GRANT_HEADER
    assert payload["access_token"] == GRANT
    assert TOKEN not in payload["injection_format"]
    with pytest.raises(InjectionRuleError) as caught:
        to_wire(rules, API_KEY_CRED)
    assert caught.value.field == "grant_id"


def test_identical_values_share_one_credential_key() -> None:
    cred = Credential("api_key", {"token": TOKEN, "app": "a1"})
    rules = InjectionRules(
        header="Authorization",
        format="Bearer {token}",
        additional=(header("X-App", "{app}"), query("app", "{app}"), header("X-Raw", "{token}")),
    )
    payload = to_wire(rules, cred)
    assert payload["additional_credentials"] == {"v0": "a1"}
    sources = [rule["value_source"] for rule in payload["additional_injections"]]
    assert sources == ["additional_credentials.v0", "additional_credentials.v0", "token"]


def test_more_rules_than_the_sdk_takes_are_refused() -> None:
    cred = Credential("api_key", {"token": TOKEN})
    rules = InjectionRules(
        header="Authorization",
        format="Bearer {token}",
        additional=tuple(header(f"X-H{i}", f"{i}-{{token}}") for i in range(11)),
    )
    with pytest.raises(InjectionRuleError, match=r"injection\.additional"):
        to_wire(rules, cred)


def test_query_names_the_sdk_refuses_are_refused() -> None:
    with pytest.raises(InjectionRuleError) as caught:
        to_wire(
            InjectionRules(additional=(query("api.key", "{token}"),)), API_KEY_CRED, grant_id=GRANT
        )
    assert caught.value.field == "injection.additional[0].name"


def test_path_prefix_is_not_expressible() -> None:
    with pytest.raises(InjectionRuleError):
        to_wire(InjectionRules(path_prefix="/bot{token}"), API_KEY_CRED, grant_id=GRANT)


# --- from_wire -------------------------------------------------------------------------------


def test_from_wire_defaults_to_bearer() -> None:
    rules, cred = from_wire({"access_token": TOKEN})
    assert rules == InjectionRules(header="Authorization", format="Bearer {token}")
    assert cred.type == "bearer"
    assert cred["token"] == TOKEN
    assert TOKEN not in repr(cred)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "access_token"),
        ({"access_token": ""}, "access_token"),
        ({"access_token": TOKEN, "injection_header": "Host"}, "injection.header"),
        ({"access_token": TOKEN, "injection_format": "Bearer"}, "injection_format"),
        ({"access_token": TOKEN, "injection_format": "{token}:{token}"}, "injection_format"),
        ({"access_token": TOKEN, "additional_credentials": ["x"]}, "additional_credentials"),
        ({"access_token": TOKEN, "additional_injections": {"a": 1}}, "additional_injections"),
        (
            {
                "access_token": TOKEN,
                "additional_injections": [{"target": "header", "key": "X", "value_source": "env"}],
            },
            "additional_injections[0].value_source",
        ),
        (
            {
                "access_token": TOKEN,
                "additional_injections": [{"target": "body", "key": "X", "value_source": "token"}],
            },
            "additional_injections[0]",
        ),
        (
            {
                "access_token": "AKID",
                "injection_format": "AWS4-HMAC-SHA256",
                "additional_credentials": {},
            },
            "additional_credentials.secret_key",
        ),
    ],
)
def test_from_wire_refuses_malformed_payloads(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(InjectionRuleError) as caught:
        from_wire(payload)
    assert caught.value.field == field


def test_from_wire_skips_rules_whose_value_is_missing_like_the_sdk() -> None:
    rules, _ = from_wire(
        {
            "access_token": TOKEN,
            "additional_injections": [
                {
                    "target": "header",
                    "key": "X-Gone",
                    "value_source": "additional_credentials.gone",
                },
                {"target": "query_param", "key": "k", "value_source": "token"},
            ],
        }
    )
    assert rules.additional == (query("k", "{token}"),)


# --- SigV4 -----------------------------------------------------------------------------------

AWS = Credential(
    "aws_sigv4",
    {
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG",
        "session_token": "FQoG//tok",
    },
)


def test_sigv4_wire_form_is_accepted_by_the_sdk() -> None:
    payload = to_wire(InjectionRules(sigv4=True), AWS, region="eu-west-1", service="execute-api")
    official_sdk_accepts(payload)
    assert payload["access_token"] == "AKIDEXAMPLE"
    assert payload["injection_format"] == "AWS4-HMAC-SHA256"
    assert payload["additional_credentials"] == {
        "secret_key": "wJalrXUtnFEMI/K7MDENG",
        "session_token": "FQoG//tok",
        "region": "eu-west-1",
        "service": "execute-api",
    }
    rules, cred = from_wire(payload)
    assert rules.sigv4
    assert dict(cred) == dict(AWS)
    assert injected_names(payload)[0] >= {"authorization", "x-amz-date", "x-amz-security-token"}


def test_sigv4_needs_an_aws_credential() -> None:
    with pytest.raises(InjectionRuleError):
        to_wire(InjectionRules(sigv4=True), API_KEY_CRED)


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        (
            "POST",
            "https://sts.us-west-2.amazonaws.com/",
            b"Action=GetCallerIdentity&Version=2011-06-15",
        ),
        ("GET", "https://iam.amazonaws.com/?Version=2010-05-08&Action=ListUsers", b""),
        ("PUT", "https://bucket.s3.eu-west-1.amazonaws.com/my%20file.txt", b"hello"),
    ],
)
def test_apply_wire_signs_like_the_official_sdk(method: str, url: str, body: bytes) -> None:
    payload = to_wire(InjectionRules(sigv4=True), AWS, region="us-east-1", service="wrong")
    request = httpx.Request(method, url, content=body, headers={"Authorization": "Bearer caller"})
    sent = apply_wire(payload, request, now=NOW)
    official = sign_aws_request(
        method,
        url,
        {},
        body,
        access_key_id="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG",
        session_token="FQoG//tok",
        region="us-east-1",
        service="wrong",
        timestamp=NOW,
    )
    for name, value in official.items():
        assert sent.headers[name] == value
    assert sent.headers.get_list("authorization") == [official["Authorization"]]
    assert sent.content == body


def test_apply_wire_without_region_for_a_foreign_host_fails() -> None:
    payload = to_wire(InjectionRules(sigv4=True), AWS)
    with pytest.raises(InjectionRuleError):
        apply_wire(payload, httpx.Request("GET", "https://minio.internal/bucket"), now=NOW)


# --- the real official client ----------------------------------------------------------------


def vault_and_provider(payload: Mapping[str, Any]):  # type: ignore[no-untyped-def]
    token_answer = json.dumps({"grant_id": GRANT, **payload}).encode()

    def answer(recorded: Recorded) -> tuple[int, dict[str, str], bytes]:
        if recorded.path.startswith("/sdk/token"):
            return 200, {"Content-Type": "application/json"}, token_answer
        if recorded.path.startswith("/sdk/"):
            return 204, {}, b""
        return 200, {"Content-Type": "application/json"}, b"{}"

    return answer


async def call_official_client(
    server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> Recorded:
    monkeypatch.setenv("ALTER_BASE_URL", server.url)
    async with alter_sdk.App(api_key=API_KEY) as app:
        await app.request(
            "POST",
            server.url + "/provider/v1/items",
            grant_id=GRANT,
            json={"hello": "world"},
            extra_headers={"Accept": "application/json"},
            query_params=CALLER_QUERY,
        )
    [provider_call] = [r for r in server.requests if r.path.startswith("/provider/")]
    return provider_call


@pytest.mark.parametrize("shape", SHAPES)
async def test_official_client_sends_what_apply_rules_does(
    shape: str, recording_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cred, rules = SHAPES[shape]
    recording_server.answer = vault_and_provider(to_wire(rules, cred, grant_id=GRANT))
    sent = await call_official_client(recording_server, monkeypatch)
    got = lower(sent.header_map())
    want_headers, want_query = expected_injection(cred, rules)
    for name in injected_header_names(rules):
        assert got.get(name) == want_headers.get(name), name
    assert sorted(parse_qsl(urlsplit(sent.path).query)) == sorted(want_query)


async def test_official_client_sigv4_signature_verifies_with_our_signer(
    recording_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = to_wire(InjectionRules(sigv4=True), AWS, region="eu-west-1", service="execute-api")
    recording_server.answer = vault_and_provider(payload)
    sent = await call_official_client(recording_server, monkeypatch)
    headers = sent.header_map()
    now = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sign_headers(
        SigV4Request(
            "POST", recording_server.url + sent.path, [("host", headers["host"])], sent.body
        ),
        AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", "FQoG//tok"),
        "eu-west-1",
        "execute-api",
        now,
        sign_body=True,
    )
    assert dict(ours.headers)["Authorization"] == headers["authorization"]
    request = httpx.Request("POST", recording_server.url + sent.path, content=sent.body)
    assert (
        apply_wire(payload, request, now=now).headers["authorization"] == headers["authorization"]
    )
