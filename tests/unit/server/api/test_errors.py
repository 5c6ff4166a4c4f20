"""Every surface answers an error through `error_answer`: same status, envelope and headers."""

from __future__ import annotations

import json

import pytest
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from vaultgate.server.api.connections import busy, refused_method
from vaultgate.server.api.errors import error_answer
from vaultgate.server.crypto import DecryptionError
from vaultgate.server.errors import MethodNotAllowed, NotFound, RateLimited, Unavailable


def test_a_tree_error_keeps_its_status_code_fields_and_headers() -> None:
    answer = error_answer(RateLimited("slow down", retry_after=3, code="rate_limit_exceeded"))
    assert answer.status == 429
    assert answer.detail == {
        "error": "rate_limit_exceeded",
        "message": "slow down",
        "retry_after": 3,
    }
    assert answer.headers == {"Retry-After": "3", "X-Vaultgate-Error": "rate_limit_exceeded"}
    assert json.loads(answer.body()) == {"detail": answer.detail}


def test_storage_errors_are_a_conflict_or_unavailable_never_a_500() -> None:
    conflict = error_answer(IntegrityError("insert", {}, Exception("dup")))
    down = error_answer(OperationalError("select", {}, Exception("gone")))
    assert (conflict.status, conflict.code) == (409, "conflict")
    assert (down.status, down.code, down.headers) == (
        503,
        "storage_unavailable",
        {"Retry-After": "1", "X-Vaultgate-Error": "storage_unavailable"},
    )
    assert conflict.headers == {"X-Vaultgate-Error": "conflict"}


def test_every_answer_names_itself_the_vaults_own() -> None:
    # On the transparent proxy an upstream's 503 and the vault's share one channel.
    for exc in (
        OperationalError("select", {}, Exception("gone")),
        RuntimeError("unforeseen"),
        HTTPException(404, "Not Found"),
        RequestValidationError([{"loc": ("body", "name"), "msg": "bad"}]),
    ):
        answer = error_answer(exc)
        assert answer.headers["X-Vaultgate-Error"] == answer.code


def test_framework_errors_get_the_same_envelope() -> None:
    invalid = error_answer(RequestValidationError([{"loc": ("body", "name"), "msg": "bad"}]))
    assert (invalid.status, invalid.code, invalid.detail["field"]) == (
        422,
        "validation_error",
        "name",
    )
    missing = error_answer(HTTPException(404, "Not Found"), method="GET", path="/v1/nothing")
    assert (missing.status, missing.code) == (404, "not_found")
    unserved = error_answer(HTTPException(404, "Not Found"), method="GET", path="/sdk/nothing")
    assert (unserved.status, unserved.code) == (501, "not_implemented")


@pytest.mark.parametrize("exc", [DecryptionError(), RuntimeError("the secret is hunter2")])
def test_anything_unforeseen_is_an_internal_error_that_says_nothing(exc: Exception) -> None:
    answer = error_answer(exc)
    assert answer.status == 500 and answer.code == "internal_error"
    assert b"hunter2" not in answer.body()


@pytest.mark.parametrize(
    ("raw", "exc"),
    [
        (busy(), Unavailable("x", code="too_many_connections", headers={"Retry-After": "1"})),
        (refused_method(), MethodNotAllowed("x", headers={"Allow": "GET"})),
    ],
)
def test_connection_level_answers_are_the_mappers(raw: bytes, exc: Exception) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    expected = error_answer(exc)
    assert head.startswith(f"HTTP/1.1 {expected.status} ".encode())
    assert json.loads(body)["detail"]["error"] == expected.code
    assert f"x-vaultgate-error: {expected.code}".encode() in head.lower()
    assert f"content-length: {len(body)}".encode() in head


def test_a_grant_that_is_not_there_answers_404_with_its_code() -> None:
    answer = error_answer(NotFound("grant not found", code="grant_not_found"))
    assert (answer.status, answer.message) == (404, "grant not found")
