"""What counts as the credential when an upstream echoes it back."""

from __future__ import annotations

import base64

from vaultgate.injection.credential import Credential
from vaultgate.server.egress.echo import needles


def test_a_basic_credential_is_found_raw_and_as_its_header_value() -> None:
    credential = Credential("basic", {"username": "svc", "password": "pw-Long-Enough-1"})
    found = needles(credential)
    assert b"pw-Long-Enough-1" in found
    assert base64.b64encode(b"svc:pw-Long-Enough-1") in found
    assert b"svc" not in found  # too short to be told from ordinary text


def test_longest_first_so_a_value_inside_another_is_replaced_whole() -> None:
    credential = Credential(
        "aws_sigv4",
        {"access_key_id": "AKIAEXAMPLEKEY1", "secret_access_key": "AKIAEXAMPLEKEY1-and-more"},
    )
    found = needles(credential)
    assert found == sorted(found, key=len, reverse=True)
