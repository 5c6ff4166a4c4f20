"""A ``proxy_only`` credential that the upstream echoes back is redacted before the caller sees it.

``proxy_only`` promises that the app never holds the credential. An upstream that reflects the
request (a debugging endpoint, an error page quoting the Authorization header, a TRACE-like echo)
would break that promise through the response, so buffered answers of such grants are searched for
the credential and its rendered forms; every hit is replaced and audited as an alert. Streamed
answers are not searched (a value split across two chunks would slip through anyway), nor are
compressed bodies.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Final

from vaultgate.injection.credential import Credential
from vaultgate.server.egress.events import completed
from vaultgate.server.egress.pipeline import Authorized, UseRequest

if TYPE_CHECKING:
    from vaultgate.server.runtime import Runtime

Headers = list[tuple[str, str]]

GRANT_ALERT: Final = "grant:alert"
ECHOED: Final = "credential_echoed"
MARK: Final = b"[redacted]"
# Shorter values would match ordinary text; no real credential is this short.
_MIN_NEEDLE: Final = 8


def needles(credential: Credential) -> list[bytes]:
    """The byte strings that give the credential away, longest first."""
    found = {value for value in credential.values() if len(value) >= _MIN_NEEDLE}
    if credential.type == "basic":
        pair = f"{credential['username']}:{credential['password']}".encode()
        found.add(base64.b64encode(pair).decode())
    return sorted((value.encode() for value in found), key=len, reverse=True)


def _scrub(data: bytes, secrets: list[bytes]) -> tuple[bytes, int]:
    hits = 0
    for secret in secrets:
        count = data.count(secret)
        if count:
            hits += count
            data = data.replace(secret, MARK)
    return data, hits


def redact_echo(
    rt: Runtime, use: UseRequest, auth: Authorized, content: bytes, headers: Headers
) -> tuple[bytes, Headers]:
    """``content`` and ``headers`` without the credential, for a ``proxy_only`` grant."""
    if not auth.grant.proxy_only:
        return content, headers
    secrets = needles(auth.credential)
    content, hits = _scrub(content, secrets)
    cleaned: Headers = []
    for name, value in headers:
        raw, found = _scrub(value.encode("latin-1"), secrets)
        hits += found
        cleaned.append((name, raw.decode("latin-1")))
    if not hits:
        return content, headers
    _alert(rt, use, auth, hits)
    length = str(len(content))
    return content, [(n, length if n.lower() == "content-length" else v) for n, v in cleaned]


def _alert(rt: Runtime, use: UseRequest, auth: Authorized, hits: int) -> None:
    now = rt.clock()
    rt.audit.submit(
        completed(
            auth.follow_up(use, now),
            now,
            event=GRANT_ALERT,
            outcome="error",
            code=ECHOED,
            details={"redacted": hits},
        )
    )
