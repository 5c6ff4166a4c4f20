"""The error tree, and protocol 5.2's status + code -> exception table."""

from __future__ import annotations

import json

import httpx
import pytest

import vaultgate as vg
from vaultgate._errors import error_from_response

KEY = "alter_key_0123456789abcdefghijABCDEFGHIJ-_klmnopqr"


def answer(status: int, code: str | None, message: str = "nope", **headers: str) -> vg.BackendError:
    detail = {"message": message} if code is None else {"error": code, "message": message}
    body = json.dumps({"detail": detail}).encode()
    return error_from_response(status, body, httpx.Headers(headers), secrets=(KEY,))


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "grant_revoked", vg.GrantRevokedError),
        (400, "credential_revoked", vg.CredentialRevokedError),
        (400, "restricted_grant_requires_proxy", vg.RestrictedGrantRequiresProxyError),
        (400, "delegated_grant_requires_proxy", vg.RestrictedGrantRequiresProxyError),
        (400, "hitl_grant_requires_proxy", vg.RestrictedGrantRequiresProxyError),
        (400, "user_limits_require_proxy", vg.RestrictedGrantRequiresProxyError),
        (400, "bad_request", vg.BackendError),
        (502, "grant_revoked", vg.GrantRevokedError),
        (502, "upstream_error", vg.BackendError),
        (401, "invalid_key", vg.InvalidKeyError),
        (401, "key_revoked", vg.KeyRevokedError),
        (401, "key_expired", vg.KeyExpiredError),
        (401, "jwt_validation_error", vg.ReAuthRequiredError),
        (401, "invalid_signature", vg.BackendError),
        (403, "grant_expired", vg.GrantExpiredError),
        (403, "grant_revoked", vg.GrantRevokedError),
        (403, "credential_revoked", vg.CredentialRevokedError),
        (403, "restricted_grant_requires_proxy", vg.RestrictedGrantRequiresProxyError),
        (403, "method_not_allowed", vg.PolicyViolationError),
        (403, None, vg.PolicyViolationError),
        (404, "grant_not_found", vg.GrantNotFoundError),
        (404, "anything", vg.GrantNotFoundError),
        (410, "whatever", vg.GrantDeletedError),
        (422, "blocked_destination", vg.BlockedDestinationError),
        (422, "validation_error", vg.BackendError),
        (504, "upstream_timeout", vg.BackendError),
        (429, "rate_limit_exceeded", vg.RateLimitError),
        (429, "quota_exceeded", vg.RateLimitError),
        (429, "something_else", vg.BackendError),
        (503, "audit_unavailable", vg.ServiceUnavailableError),
        (500, "internal", vg.BackendError),
    ],
)
def test_status_and_code_map_to_the_documented_class(
    status: int, code: str | None, expected: type[vg.BackendError]
) -> None:
    error = answer(status, code, request_id="ignored", **{"X-Request-ID": "req-1"})
    assert type(error) is expected
    assert error.status_code == status
    assert error.request_id == "req-1"
    assert error.message == "nope"
    assert str(error) == "nope"
    if code is not None:
        assert error.code == code


def test_policy_violation_names_the_rule() -> None:
    error = answer(403, "path_not_allowed")
    assert isinstance(error, vg.PolicyViolationError)
    assert error.policy_error == "path_not_allowed"


def test_retry_after_header_wins_over_the_body() -> None:
    body = json.dumps({"detail": {"error": "rate_limit_exceeded", "retry_after": 99}}).encode()
    error = error_from_response(429, body, httpx.Headers({"Retry-After": "7"}))
    assert isinstance(error, vg.RateLimitError)
    assert error.retry_after == 7


def test_retry_after_from_the_body_when_no_header() -> None:
    body = json.dumps({"detail": {"error": "rate_limit_exceeded", "retry_after": 12}}).encode()
    error = error_from_response(429, body, httpx.Headers())
    assert isinstance(error, vg.RateLimitError)
    assert error.retry_after == 12


def test_non_json_429_from_an_intermediary_is_still_a_rate_limit() -> None:
    error = error_from_response(429, b"<html>slow down</html>", httpx.Headers({"Retry-After": "3"}))
    assert isinstance(error, vg.RateLimitError)
    assert error.retry_after == 3
    assert "429" in error.message


def test_non_json_body_gets_a_generic_message() -> None:
    error = error_from_response(500, b"Internal Server Error", httpx.Headers())
    assert type(error) is vg.BackendError
    assert error.message == "the vault answered HTTP 500"
    assert error.code == "backend_error"


def test_top_level_envelope_is_read_too() -> None:
    body = json.dumps({"error": "invalid_key", "message": "who are you"}).encode()
    error = error_from_response(401, body, httpx.Headers())
    assert isinstance(error, vg.InvalidKeyError)
    assert error.message == "who are you"


def test_a_message_echoing_the_key_is_scrubbed() -> None:
    error = answer(401, "invalid_key", message=f"bad key {KEY}")
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert "**********" in str(error)


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (vg.AlterValueError, ValueError),
        (vg.AlterValueError, vg.VaultgateError),
        (vg.BlockedDestinationError, vg.BackendError),
        (vg.GrantExpiredError, vg.ReAuthRequiredError),
        (vg.GrantRevokedError, vg.ReAuthRequiredError),
        (vg.CredentialRevokedError, vg.ReAuthRequiredError),
        (vg.GrantDeletedError, vg.ReAuthRequiredError),
        (vg.ReAuthRequiredError, vg.BackendError),
        (vg.GrantNotFoundError, vg.BackendError),
        (vg.PolicyViolationError, vg.BackendError),
        (vg.RestrictedGrantRequiresProxyError, vg.BackendError),
        (vg.RateLimitError, vg.BackendError),
        (vg.InvalidKeyError, vg.BackendError),
        (vg.KeyRevokedError, vg.BackendError),
        (vg.KeyExpiredError, vg.BackendError),
        (vg.ServiceUnavailableError, vg.BackendError),
        (vg.BackendError, vg.VaultgateError),
        (vg.ProviderUnauthorizedError, vg.ProviderAPIError),
        (vg.ProviderAPIError, vg.VaultgateError),
        (vg.TimeoutError, vg.NetworkError),
        (vg.NetworkError, vg.VaultgateError),
    ],
)
def test_the_tree_has_the_documented_shape(child: type, parent: type) -> None:
    assert issubclass(child, parent)


def test_provider_errors_are_not_backend_errors() -> None:
    assert not issubclass(vg.ProviderAPIError, vg.BackendError)
    assert not issubclass(vg.NetworkError, vg.BackendError)
    assert vg.TimeoutError is not TimeoutError
