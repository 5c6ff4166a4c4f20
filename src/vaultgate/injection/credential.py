"""The plaintext of a credential, in a type that cannot print itself by accident."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final, Literal

CredentialType = Literal[
    "bearer", "api_key", "basic", "aws_sigv4", "oauth2_client_credentials", "oauth2_refresh_token"
]
CREDENTIAL_TYPES: Final[tuple[CredentialType, ...]] = (
    "bearer",
    "api_key",
    "basic",
    "aws_sigv4",
    "oauth2_client_credentials",
    "oauth2_refresh_token",
)

# The fields each type must carry, and those it may carry.
REQUIRED_FIELDS: Final[Mapping[CredentialType, tuple[str, ...]]] = {
    "bearer": ("token",),
    "api_key": ("token",),
    "basic": ("username", "password"),
    "aws_sigv4": ("access_key_id", "secret_access_key"),
    "oauth2_client_credentials": ("token_url", "client_id", "client_secret"),
    "oauth2_refresh_token": ("token_url", "client_id", "refresh_token"),
}
OPTIONAL_FIELDS: Final[Mapping[CredentialType, tuple[str, ...]]] = {
    "bearer": (),
    "api_key": (),
    "basic": (),
    "aws_sigv4": ("session_token",),
    "oauth2_client_credentials": ("scopes", "audience", "client_auth_method"),
    "oauth2_refresh_token": (
        "client_secret",
        "scopes",
        "client_auth_method",
        "revoke_url",
        "access_token",
        "expires_at",
    ),
}

REDACTED: Final = "**********"


class Credential(Mapping[str, str]):
    """The fields of a credential (``token``, ``username``, ...), readable by key, never printed.

    ``repr``/``str`` show the type and field names only, so a stray log line or traceback
    carries no secret.
    """

    __slots__ = ("_fields", "type")

    def __init__(self, type: CredentialType, fields: Mapping[str, str]) -> None:
        self.type: CredentialType = type
        self._fields: dict[str, str] = dict(fields)

    def __getitem__(self, key: str) -> str:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        names = ", ".join(f"{name}={REDACTED!r}" for name in self._fields)
        return f"Credential(type={self.type!r}, {names})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Credential cannot be pickled")

    def redacted(self) -> dict[str, str]:
        """A copy safe for logs: every value replaced."""
        return dict.fromkeys(self._fields, REDACTED)
