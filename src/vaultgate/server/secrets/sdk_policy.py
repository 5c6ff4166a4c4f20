"""The official client's ``grant_policy`` input, in vaultgate's policy language.

The client sends ``{expires_at, max_ttl_seconds, default_ttl_seconds}`` (typed) or a dict that may
also carry ``restrictions`` and ``requires_approval``. ``expires_at`` becomes the policy's own
``expires_at``, a TTL becomes the new grant's lifetime, and ``restrictions`` is a vaultgate policy
document (``allowed_methods``, ``allowed_paths``, ``rate_limit``, ...). Whatever the result, the
grant is a clone, so ``check_narrower`` refuses anything its parent would not allow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from vaultgate.server.errors import Unprocessable
from vaultgate.server.policy import parse_policy
from vaultgate.server.policy.narrowing import MAX_TTL_SECONDS

CODE = "invalid_grant_policy"
_KEYS = frozenset(
    {"expires_at", "max_ttl_seconds", "default_ttl_seconds", "restrictions", "requires_approval"}
)


@dataclass(frozen=True, slots=True)
class GrantPolicyIn:
    policy: dict[str, Any] = field(default_factory=dict)  # a vaultgate policy document
    ttl_seconds: int | None = None


def _refuse(field_name: str, problem: str) -> Unprocessable:
    return Unprocessable(f"{field_name}: {problem}", code=CODE, field=field_name)


def _ttl(raw: dict[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TTL_SECONDS:
        raise _refuse(f"grant_policy.{name}", f"must be a whole number from 1 to {MAX_TTL_SECONDS}")
    return value


def parse_grant_policy(raw: object, *, default_ttl: bool) -> GrantPolicyIn:
    """Validate the client's ``grant_policy``; a 422 ``invalid_grant_policy`` names the field."""
    if raw is None:
        return GrantPolicyIn()
    if not isinstance(raw, dict):
        raise _refuse("grant_policy", "must be a JSON object")
    allowed = _KEYS if default_ttl else _KEYS - {"default_ttl_seconds"}
    for key in raw:
        if key not in allowed:
            shown = "".join(c for c in str(key)[:64] if c.isprintable())
            raise _refuse(f"grant_policy.{shown}", "unknown field")
    if raw.get("requires_approval") not in (None, False):
        raise _refuse(
            "grant_policy.requires_approval", "human approval is not available on this route"
        )
    restrictions = raw.get("restrictions")
    if restrictions is not None and not isinstance(restrictions, dict):
        raise _refuse("grant_policy.restrictions", "must be a policy object")
    policy = dict(restrictions or {})
    if raw.get("expires_at") is not None:
        policy["expires_at"] = raw["expires_at"]
    with as_grant_policy_error():
        policy = parse_policy(policy).to_doc()
    ttls = [t for t in (_ttl(raw, "max_ttl_seconds"), _ttl(raw, "default_ttl_seconds")) if t]
    return GrantPolicyIn(policy, min(ttls) if ttls else None)


@contextmanager
def as_grant_policy_error() -> Iterator[None]:
    """A policy the vault refuses (bad value, or wider than the parent's) as the client's 422."""
    try:
        yield
    except Unprocessable as exc:
        if exc.code != "validation_error":
            raise
        raise Unprocessable(exc.message, code=CODE, field=exc.field) from None
