"""The held request and the kept result, as sealed; their reprs never show a value."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

# Never stored with a held call: the caller's own credentials for the vault and anything a
# browser would add. The grant's credential is injected only when the call is finally sent.
_UNKEPT_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "cookie",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "x-vaultgate-target",
        "x-vaultgate-reason",
        "x-vaultgate-caller",
    }
)
STATUSES = ("pending", "approved", "executing", "executed", "failed", "denied", "expired")
TERMINAL = frozenset({"executed", "failed", "denied", "expired"})


def kept_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in _UNKEPT_HEADERS]


@dataclass(frozen=True, slots=True, repr=False)
class HeldRequest:
    """A call as it will be sent once approved: before injection, without credentials."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    query: list[tuple[str, str]]
    body: bytes | None

    def __repr__(self) -> str:
        size = "none" if self.body is None else f"<{len(self.body)} bytes>"
        return f"HeldRequest(method={self.method!r}, headers=<{len(self.headers)}>, body={size})"

    def dump(self) -> bytes:
        return json.dumps(
            {
                "method": self.method,
                "url": self.url,
                "headers": self.headers,
                "query": self.query,
                "body": None if self.body is None else base64.b64encode(self.body).decode(),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def load(cls, raw: bytes) -> HeldRequest:
        data = json.loads(raw)
        body = data["body"]
        return cls(
            method=data["method"],
            url=data["url"],
            headers=[(str(k), str(v)) for k, v in data["headers"]],
            query=[(str(k), str(v)) for k, v in data["query"]],
            body=None if body is None else base64.b64decode(body),
        )

    def preview(self, limit: int = 2048) -> str:
        """The start of the body as text, for a person deciding (never stored like this)."""
        if not self.body:
            return ""
        text = self.body[:limit].decode("utf-8", errors="replace")
        return text + ("..." if len(self.body) > limit else "")


@dataclass(frozen=True, slots=True, repr=False)
class KeptResult:
    """The upstream's answer in the protocol's ``ApprovalResult`` shape, kept until expiry."""

    payload: dict[str, Any]

    def __repr__(self) -> str:
        return f"KeptResult(status_code={self.payload.get('status_code')!r})"

    def dump(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":")).encode()

    @classmethod
    def load(cls, raw: bytes) -> KeptResult:
        return cls(json.loads(raw))
