"""What a sink is: its request bodies (validated strictly), its filter, and its stored form."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

KINDS: Final = ("webhook", "syslog", "file")
SYSLOG_PORT: Final = 514
SYSLOG_TLS_PORT: Final = 6514  # RFC 5425's port, as rsyslog and syslog-ng listen for TLS


def default_syslog_port(tls: bool) -> int:
    """The port a syslog sink takes when its config names none."""
    return SYSLOG_TLS_PORT if tls else SYSLOG_PORT


Kind = Literal["webhook", "syslog", "file"]
NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_.-]{0,63}$"  # also a Prometheus label value: keep it tame
MIN_SECRET: Final = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventFilter(_Strict):
    """Which events a sink receives; each list empty means "any". An event matches every list.

    ``events`` entries are exact names (``grant:deny``) or a prefix ending in ``*`` (``alert:*``).
    """

    events: list[str] = Field(default_factory=list, max_length=64)
    outcomes: list[Literal["allowed", "denied", "ok", "error"]] = Field(
        default_factory=list, max_length=4
    )
    grant_ids: list[str] = Field(default_factory=list, max_length=256)
    providers: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("events", "grant_ids", "providers")
    @classmethod
    def _texts(cls, values: list[str]) -> list[str]:
        for value in values:
            if not 0 < len(value) <= 64 or any(ord(c) < 33 or ord(c) == 127 for c in value):
                raise ValueError("entries are 1 to 64 printable characters without spaces")
        return values

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.events and not any(_name_matches(p, str(event["event"])) for p in self.events):
            return False
        if self.outcomes and event["outcome"] not in self.outcomes:
            return False
        if self.grant_ids and event.get("grant_id") not in self.grant_ids:
            return False
        return not self.providers or event.get("provider") in self.providers


def _name_matches(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


class WebhookConfig(_Strict):
    url: str = Field(min_length=8, max_length=2048)


class SyslogConfig(_Strict):
    """A TCP receiver (RFC 6587), or with ``tls`` the same framing over TLS (RFC 5425).

    With ``tls`` the receiver's certificate is always verified (chain and name, TLS 1.2 or
    later) against ``ca_file`` or the system trust store; there is no switch to skip that.
    ``server_name`` is the name the certificate must carry when it is not ``host`` (a receiver
    reached by address). ``cert_file`` and ``key_file``, both or neither, are the vault's own
    certificate for a receiver that requires one (mutual TLS). Whether the files are readable
    PEM is checked by the store.
    """

    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int = Field(default=SYSLOG_PORT, ge=1, le=65535)
    # RFC 5424 facility 13 is "log audit"; the app name is the APP-NAME field.
    facility: int = Field(default=13, ge=0, le=23)
    app_name: str = Field(default="vaultgate", pattern=r"^[!-~]{1,48}$")
    tls: bool = False
    ca_file: str | None = Field(default=None, min_length=2, max_length=1024)
    server_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:-]+$"
    )
    # The vault's own certificate and key, for a receiver that requires client certificates.
    cert_file: str | None = Field(default=None, min_length=2, max_length=1024)
    key_file: str | None = Field(default=None, min_length=2, max_length=1024)

    @field_validator("host")
    @classmethod
    def _unbracketed(cls, value: str) -> str:
        # "[::1]" is how a URL spells an IPv6 address; a socket takes it without the brackets
        # (with them, the name would be looked up and never found).
        if value.startswith("[") and value.endswith("]"):
            try:
                return str(ipaddress.IPv6Address(value[1:-1]))
            except ValueError:
                raise ValueError("brackets may only hold an IPv6 address") from None
        if "[" in value or "]" in value:
            raise ValueError("brackets may only hold an IPv6 address, as in [2001:db8::1]")
        return _address_or_name(value)

    @field_validator("ca_file", "server_name", "cert_file", "key_file")
    @classmethod
    def _with_tls(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Refused rather than ignored: a CA given without tls would look safe and be clear text.
        if value is not None and not info.data.get("tls", True):
            raise ValueError("needs tls: true")
        if value is not None and info.field_name != "server_name":
            return _absolute_path(value)
        return value if value is None else _address_or_name(value)

    @model_validator(mode="after")
    def _certificate_and_key(self) -> SyslogConfig:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise ValueError(f"cert_file and key_file go together: {missing} is missing")
        return self

    @model_validator(mode="after")
    def _tls_port(self) -> SyslogConfig:
        if self.tls and "port" not in self.model_fields_set:
            self.port = default_syslog_port(tls=True)
        return self


def _address_or_name(value: str) -> str:
    """An IP address, or a DNS name a connection can look up: labels of 1 to 63 characters
    (an empty one, as in "logs..example" or ".logs", made delivery fail on every attempt)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if ":" in value:
        raise ValueError("not an IP address, and a host name holds no ':'")
    labels = value.removesuffix(".").split(".")
    if any(not label or len(label) > 63 for label in labels):
        raise ValueError("each dot-separated label of a host name must be 1 to 63 characters")
    if any(label.startswith("-") or label.endswith("-") for label in labels):
        raise ValueError("a host name's labels may not begin or end with '-'")
    return value


class FileConfig(_Strict):
    path: str = Field(min_length=2, max_length=1024)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _absolute_path(value)


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or "\x00" in value:
        raise ValueError("must be an absolute path")
    return value


CONFIGS: Final[dict[str, type[_Strict]]] = {
    "webhook": WebhookConfig,
    "syslog": SyslogConfig,
    "file": FileConfig,
}


class SinkCreate(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: Kind
    config: dict[str, Any]
    # Write-only: the webhook's HMAC key. Stored sealed, never shown again.
    secret: str | None = Field(default=None, min_length=MIN_SECRET, max_length=512, repr=False)
    filter: EventFilter = Field(default_factory=EventFilter)
    enabled: bool = True
    alert_lead_seconds: int | None = Field(default=None, ge=60, le=366 * 86400)
    # "now": only events after the sink is created; "beginning": the whole trail first.
    start: Literal["now", "beginning"] = "now"


class SinkUpdate(_Strict):
    config: dict[str, Any] | None = None
    secret: str | None = Field(default=None, min_length=MIN_SECRET, max_length=512, repr=False)
    filter: EventFilter | None = None
    enabled: bool | None = None
    alert_lead_seconds: int | None = Field(default=None, ge=60, le=366 * 86400)


@dataclass(frozen=True, slots=True)
class Sink:
    """A stored sink as the delivery loop needs it (the secret stays sealed until sending)."""

    id: str
    name: str
    kind: str
    config: dict[str, Any]
    filter: EventFilter
    secret_sealed: bytes | None
    enabled: bool
    alert_lead_seconds: int | None
    cursor: int
    attempts: int
    last_error: str | None
    next_attempt_at: float
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def __repr__(self) -> str:
        return f"Sink(name={self.name!r}, kind={self.kind!r}, cursor={self.cursor})"

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Sink:
        data = dict(row)
        data["filter"] = EventFilter.model_validate(data["filter"] or {})
        return cls(**data)
