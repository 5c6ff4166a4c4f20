"""Held requests are sealed through the barrier, bound to their approval; reprs show no value."""

from __future__ import annotations

import os

import pytest

from vaultgate.server.approvals.models import HeldRequest, KeptResult, kept_headers
from vaultgate.server.approvals.sealing import open_sealed, seal
from vaultgate.server.crypto import Barrier, DecryptionError, Keyring, MasterKey

CANARY = b"canary-unit-body-Pq81"


@pytest.fixture
def barrier() -> Barrier:
    return Barrier(Keyring([MasterKey("k1", os.urandom(32))], "k1"))


def test_a_sealed_request_opens_only_for_its_own_app_approval_and_kind(barrier: Barrier) -> None:
    blob = seal(barrier, CANARY, app_id="a", approval_id="r1", kind="request")
    assert CANARY not in blob
    assert open_sealed(barrier, blob, app_id="a", approval_id="r1", kind="request") == CANARY
    for app_id, approval_id, kind in (
        ("b", "r1", "request"),
        ("a", "r2", "request"),
        ("a", "r1", "result"),
    ):
        with pytest.raises(DecryptionError):
            open_sealed(barrier, blob, app_id=app_id, approval_id=approval_id, kind=kind)  # type: ignore[arg-type]


def test_a_tampered_or_foreign_blob_is_refused(barrier: Barrier) -> None:
    blob = bytearray(seal(barrier, CANARY, app_id="a", approval_id="r", kind="result"))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        open_sealed(barrier, bytes(blob), app_id="a", approval_id="r", kind="result")
    with pytest.raises(ValueError, match="not a sealed"):
        open_sealed(barrier, b"plain", app_id="a", approval_id="r", kind="result")


def test_held_request_round_trips_and_never_prints_its_values() -> None:
    held = HeldRequest("POST", "https://api.example/x", [("x-note", "n")], [("q", "1")], CANARY)
    assert HeldRequest.load(held.dump()) == held
    assert CANARY.decode() not in repr(held) and "x-note" not in repr(held)
    assert held.preview(limit=6) == CANARY[:6].decode() + "..."
    kept = KeptResult({"status_code": 201, "body_b64": "Y2FuYXJ5"})
    assert "Y2FuYXJ5" not in repr(kept) and KeptResult.load(kept.dump()) == kept


def test_the_callers_credentials_are_never_kept_with_a_call() -> None:
    headers = [
        ("Authorization", "Bearer alter_key_x"),
        ("X-Api-Key", "k"),
        ("Cookie", "c"),
        ("X-Vaultgate-Caller", "bot"),
        ("X-Note", "keep me"),
    ]
    assert kept_headers(headers) == [("X-Note", "keep me")]
