"""The signed vault request ``Signer.build`` makes is, header for header, what httpx's own
``Request`` made of the same parts before the SDK built it by hand (the wire stays the same),
and it passes the server's signature check."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from vaultgate._protocol import Signer, compact_json
from vaultgate.injection.signing import sign_request, verify_signature

KEY = "alter_key_" + "s" * 40
CLIENT = httpx.Client(base_url="http://127.0.0.1:8200/mount", timeout=7.0)


def httpx_made(signer: Signer, method: str, path: str, payload: Any, caller: str | None) -> Any:
    body = b"" if payload is None else compact_json(payload)
    who = caller if caller is not None else signer.caller
    headers = signer.default_headers()
    if payload is not None:
        headers["Content-Type"] = "application/json"
    if who is not None:
        headers |= {"X-Alter-Caller": who, "X-Alter-Caller-Type": signer.caller_type}
    headers |= sign_request(
        KEY,
        method,
        path,
        body,
        caller=who,
        caller_type=signer.caller_type if who is not None else None,
        now=1_800_000_000,
        nonce="n" * 32,
    )
    url = f"http://127.0.0.1:8200/mount{path}"
    return httpx.Request(method, url, content=body, headers=headers)


@pytest.mark.parametrize(
    ("method", "path", "payload", "caller"),
    [
        ("POST", "/sdk/token", {"grant_id": "g", "reason": None}, "cron"),
        ("POST", "/sdk/oauth/audit/api-call", {"a": [1, "é"]}, None),
        ("POST", "/sdk/keys/derive", {}, None),
        ("GET", "/sdk/grants?limit=5&offset=0", None, None),
        ("DELETE", "/sdk/grants/g", None, "agent-1"),
    ],
)
def test_built_requests_match_httpx_and_verify(
    method: str, path: str, payload: Any, caller: str | None
) -> None:
    signer = Signer(KEY, "svc", "service", clock=lambda: 1_800_000_000.5, nonce=lambda: "n" * 32)
    ours = signer.build(CLIENT, path, payload, method=method, caller=caller)
    theirs = httpx_made(signer, method, path, payload, caller)
    assert (ours.method, ours.url, ours.content) == (theirs.method, theirs.url, theirs.content)
    assert ours.headers.raw == theirs.headers.raw
    assert ours.extensions["timeout"] == httpx.Timeout(7.0).as_dict()
    verify_signature(KEY, method, path, ours.content, ours.headers)
