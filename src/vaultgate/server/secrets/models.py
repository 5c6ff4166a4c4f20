"""Request bodies of the secrets and grants API, validated strictly (unknown fields refused)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vaultgate.injection.credential import CREDENTIAL_TYPES

MAX_VALUE = 64 * 1024
MAX_NAME = 200


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _clean_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


class AdditionalRuleIn(Strict):
    target: str = Field(pattern="^(header|query)$")
    name: str = Field(min_length=1, max_length=200)
    value: str = Field(min_length=1, max_length=4096)


class InjectionIn(Strict):
    header: str | None = Field(default=None, max_length=200)
    format: str | None = Field(default=None, max_length=4096)
    additional: list[AdditionalRuleIn] = Field(default_factory=list, max_length=16)


class AwsIn(Strict):
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,32}$")
    service: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,64}$")


class SecretCreate(Strict):
    app_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    provider: str | None = Field(default=None, max_length=64)
    provider_params: dict[str, str] = Field(default_factory=dict, max_length=8)
    credential_type: str | None = None
    # Plain dict on purpose: its values are secret, and a typed model would echo them in errors.
    credential: dict[str, Any]
    injection: InjectionIn | None = None
    aws: AwsIn | None = None
    allowed_hosts: list[str] | None = Field(default=None, max_length=64)
    policy: dict[str, Any] | None = None

    _name = field_validator("name")(_clean_name)

    @field_validator("credential_type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value not in CREDENTIAL_TYPES:
            raise ValueError(f"must be one of {', '.join(CREDENTIAL_TYPES)}")
        return value


class SecretRotate(Strict):
    credential: dict[str, Any]


class GrantUpdate(Strict):
    policy: dict[str, Any]


class GrantClone(Strict):
    name: str | None = Field(default=None, max_length=MAX_NAME)
    # Strict: "60" or true for a lifetime is a client bug, not something to guess at.
    ttl_seconds: int | None = Field(default=None, ge=1, le=10 * 365 * 86400, strict=True)
    policy: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _clean_optional_name(cls, value: str | None) -> str | None:
        return None if value is None else _clean_name(value)


class AppCreate(Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME)

    _name = field_validator("name")(_clean_name)


class KeyCreate(Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    expires_at: str | None = None
    # Limits on an app key (auth/app_keys.py checks them; none given: a full key).
    scopes: list[str] | None = Field(default=None, max_length=64)
    cidr_allowlist: list[str] | None = Field(default=None, max_length=64)
    rate_limit_rpm: int | None = None

    _name = field_validator("name")(_clean_name)
