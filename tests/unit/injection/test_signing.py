"""The Alter request-signing scheme, both sides, and interoperability with the official client."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import TYPE_CHECKING

import alter_sdk
import pytest

from vaultgate.injection.signing import (
    SignatureError,
    canonical_path,
    parse_timestamp,
    sign_request,
    signing_key,
    string_to_sign,
    verify_signature,
)

API_KEY = "alter_key_" + "A1b2C3d4E5f6G7h8I9j0-_klmnopqrstuvwxyz01"
NONCE = "0123456789abcdef0123456789abcdef"
BODY = b'{"grant_id":"g","reason":null}'

if TYPE_CHECKING:
    from tests.unit.injection.conftest import RecordingServer


def code_of(call: object) -> str:
    with pytest.raises(SignatureError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code


def test_signing_key_is_hmac_of_the_context() -> None:
    expected = hmac.new(API_KEY.encode(), b"alter-signing-v1", hashlib.sha256).digest()
    assert signing_key(API_KEY) == expected
    assert len(signing_key(API_KEY)) == 32


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/sdk/token", "/sdk/token"),
        ("/sdk/token?", "/sdk/token"),
        ("/sdk/x?&", "/sdk/x?"),
        ("/sdk/post%3A/emails", "/sdk/post:/emails"),
        ("/sdk/a?b=2&a=1&a=0", "/sdk/a?a=0&a=1&b=2"),
        ("/sdk/a?wait=10&q=a b", "/sdk/a?q=a+b&wait=10"),
        ("/sdk/a?flag&x=", "/sdk/a?flag=&x="),
    ],
)
def test_canonical_path(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical


def test_legacy_string_has_six_lines_and_an_optional_rule_line() -> None:
    text = string_to_sign("post", "/sdk/token", "1700000000", NONCE, "ab", "")
    assert text.split("\n") == ["POST", "/sdk/token", "1700000000", NONCE, "ab", ""]
    ruled = string_to_sign("POST", "/sdk/token", "1", NONCE, "ab", "s1,s2", "cnVsZQ")
    assert ruled.endswith("\ns1,s2\nrequest-rule:cnVsZQ")


def test_sign_request_without_identity_sends_only_the_legacy_signature() -> None:
    headers = sign_request(API_KEY, "POST", "/sdk/token", BODY, now=1700000000, nonce=NONCE)
    assert set(headers) == {
        "X-Alter-Timestamp",
        "X-Alter-Nonce",
        "X-Alter-Content-SHA256",
        "X-Alter-Signature",
    }
    legacy = string_to_sign(
        "POST", "/sdk/token", "1700000000", NONCE, hashlib.sha256(BODY).hexdigest()
    )
    expected = hmac.new(signing_key(API_KEY), legacy.encode(), hashlib.sha256).hexdigest()
    assert headers["X-Alter-Signature"] == expected
    verify_signature(API_KEY, "POST", "/sdk/token", BODY, headers)


def test_sign_request_with_identity_sends_v2_in_both_headers() -> None:
    headers = sign_request(
        API_KEY,
        "POST",
        "/sdk/token",
        BODY,
        caller="my-agent",
        caller_type="service",
        context={"run": "42"},
        now=1700000000,
        nonce=NONCE,
    )
    assert headers["X-Alter-Signature"] == headers["X-Alter-Signature-V2"]
    assert headers["X-Alter-Caller"] == "my-agent"
    assert headers["X-Alter-Context"] == '{"run":"42"}'
    verify_signature(API_KEY, "POST", "/sdk/token", BODY, headers)


def signed(**identity: str) -> dict[str, str]:
    return sign_request(
        API_KEY, "POST", "/sdk/token", BODY, now=1700000000, nonce=NONCE, **identity
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "missing", ["X-Alter-Timestamp", "X-Alter-Nonce", "X-Alter-Content-SHA256", "X-Alter-Signature"]
)
def test_each_signing_header_is_required(missing: str) -> None:
    headers = signed()
    del headers[missing]
    assert (
        code_of(lambda: verify_signature(API_KEY, "POST", "/sdk/token", BODY, headers))
        == "missing_signature"
    )


def test_a_changed_body_is_a_content_hash_mismatch() -> None:
    headers = signed()
    assert (
        code_of(lambda: verify_signature(API_KEY, "POST", "/sdk/token", BODY + b" ", headers))
        == "content_hash_mismatch"
    )


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", "/sdk/token", API_KEY),
        ("POST", "/sdk/proxy", API_KEY),
        ("POST", "/prefix/sdk/token", API_KEY),
        ("POST", "/sdk/token", API_KEY[:-1] + "x"),
    ],
)
def test_a_different_request_or_key_is_an_invalid_signature(
    method: str, path: str, key: str
) -> None:
    headers = signed()
    assert (
        code_of(lambda: verify_signature(key, method, path, BODY, headers)) == "invalid_signature"
    )


def test_changed_or_stripped_identity_is_refused() -> None:
    headers = signed(caller="my-agent", caller_type="service")
    forged = {**headers, "X-Alter-Caller": "admin"}
    assert (
        code_of(lambda: verify_signature(API_KEY, "POST", "/sdk/token", BODY, forged))
        == "invalid_signature"
    )
    # Dropping only the V2 header while keeping identity must not fall back to the legacy check.
    no_v2 = {k: v for k, v in headers.items() if k != "X-Alter-Signature-V2"}
    assert (
        code_of(lambda: verify_signature(API_KEY, "POST", "/sdk/token", BODY, no_v2))
        == "invalid_signature"
    )
    # Stripping every identity header leaves a V2 signature that the legacy string does not match.
    stripped = {k: v for k, v in headers.items() if not k.startswith("X-Alter-Caller")}
    assert (
        code_of(lambda: verify_signature(API_KEY, "POST", "/sdk/token", BODY, stripped))
        == "invalid_signature"
    )


def test_scope_constraints_are_bound() -> None:
    headers = sign_request(
        API_KEY, "POST", "/sdk/token", BODY, scope_constraints="read", now=1, nonce=NONCE
    )
    verify_signature(API_KEY, "POST", "/sdk/token", BODY, headers)
    widened = {**headers, "X-Alter-Scope-Constraints": "read,write"}
    assert (
        code_of(lambda: verify_signature(API_KEY, "POST", "/sdk/token", BODY, widened))
        == "invalid_signature"
    )


def test_headers_are_matched_case_insensitively() -> None:
    headers = {k.lower(): v for k, v in signed(caller="a").items()}
    verify_signature(API_KEY, "POST", "/sdk/token", BODY, headers)


def test_parse_timestamp() -> None:
    assert parse_timestamp({"x-alter-timestamp": "1700000000"}) == 1700000000
    assert code_of(lambda: parse_timestamp({})) == "missing_signature"
    for bad in ("-1", "1.5", "１２", "1e9", "9" * 20):
        assert (
            code_of(lambda bad=bad: parse_timestamp({"X-Alter-Timestamp": bad}))
            == "invalid_signature"
        )


def test_errors_never_echo_the_signature() -> None:
    headers = signed()
    with pytest.raises(SignatureError) as caught:
        verify_signature(API_KEY, "POST", "/sdk/other", BODY, headers)
    assert headers["X-Alter-Signature"] not in str(caught.value)


# --- the official client ---------------------------------------------------------------------


async def run_official_client(
    monkeypatch: pytest.MonkeyPatch,
    base_url: str,
    *,
    app_caller: str | None = None,
    **request: object,
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", base_url)
    app = alter_sdk.App(api_key=API_KEY, caller=app_caller)
    try:
        with pytest.raises(alter_sdk.AlterSDKError):
            await app.request(
                "GET",
                "https://api.example.com/v1/items?b=2&a=1",
                grant_id=str(uuid.uuid4()),
                reason="interop test",
                **request,
            )
    finally:
        await app.close()


@pytest.mark.parametrize(
    ("caller", "request_kwargs"),
    [
        (None, {}),
        ("my-agent", {}),
        (None, {"caller": "per-call-agent"}),
        ("my-agent", {"context": {"run": "42", "step": "a b"}}),
    ],
)
async def test_official_client_requests_verify(
    recording_server: RecordingServer,
    monkeypatch: pytest.MonkeyPatch,
    caller: str | None,
    request_kwargs: dict[str, object],
) -> None:
    await run_official_client(
        monkeypatch, recording_server.url, app_caller=caller, **request_kwargs
    )
    [recorded] = recording_server.requests
    assert recorded.path == "/sdk/token"
    headers = recorded.header_map()
    verify_signature(API_KEY, recorded.method, recorded.path, recorded.body, headers)
    assert ("x-alter-signature-v2" in headers) == bool(caller or request_kwargs)
    assert (
        code_of(
            lambda: verify_signature(
                API_KEY, recorded.method, recorded.path, recorded.body + b"x", headers
            )
        )
        == "content_hash_mismatch"
    )


async def test_official_client_under_a_path_prefix_signs_the_stripped_path(
    recording_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run_official_client(monkeypatch, recording_server.url + "/prefix", app_caller="my-agent")
    [recorded] = recording_server.requests
    assert recorded.path == "/prefix/sdk/token"
    headers = recorded.header_map()
    verify_signature(
        API_KEY, recorded.method, recorded.path.removeprefix("/prefix"), recorded.body, headers
    )
    assert (
        code_of(
            lambda: verify_signature(
                API_KEY, recorded.method, recorded.path, recorded.body, headers
            )
        )
        == "invalid_signature"
    )
