"""Clones may only narrow: building a clone's policy from its parent's, and refusing a wider one.

``merge_for_clone`` fills every field the request left unset from the parent; ``check_narrower``
then refuses (422, naming the field) any field in which the clone would allow something the parent
does not. Each comparison is conservative: when containment cannot be shown, the clone is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from vaultgate.server.errors import Unprocessable
from vaultgate.server.policy.approval import approval_narrower
from vaultgate.server.policy.globs import glob_covers
from vaultgate.server.policy.models import (
    Budget,
    IPNetwork,
    Policy,
    RateLimit,
    Schedule,
    parse_policy,
)

MAX_TTL_SECONDS = 10 * 366 * 24 * 3600


def merge_for_clone(parent: Policy, requested: Policy) -> Policy:
    """The clone's policy: the requested fields, and the parent's wherever the request is silent."""
    return parse_policy({**parent.to_doc(), **requested.to_doc()})


def clone_expiry(ttl_seconds: object, now: datetime) -> datetime:
    """``now + ttl_seconds`` for a clone request, refusing anything but a positive whole number."""
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise Unprocessable("ttl_seconds: must be a whole number of seconds", field="ttl_seconds")
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise Unprocessable(
            f"ttl_seconds: must be from 1 to {MAX_TTL_SECONDS}", field="ttl_seconds"
        )
    return now + timedelta(seconds=ttl_seconds)


def _methods(child: list[str], parent: list[str]) -> str | None:
    return None if set(child) <= set(parent) else "includes a method the parent does not allow"


def _paths(child: list[str], parent: list[str]) -> str | None:
    for glob in child:
        if not any(glob_covers(p, glob) for p in parent):
            return "includes a path glob not covered by the parent's allowed_paths"
    return None


def _not_before(child: datetime, parent: datetime) -> str | None:
    return None if child >= parent else "may not be earlier than the parent's"


def _expires_at(child: datetime, parent: datetime) -> str | None:
    return None if child <= parent else "may not be later than the parent's"


def _schedule(child: Schedule, parent: Schedule) -> str | None:
    # Zones with different rules map one instant to different wall-clock times; even aliases are
    # refused rather than trusted.
    if child.timezone != parent.timezone:
        return "must use the parent's time zone"
    for lo, hi in child.intervals:
        if not any(p_lo <= lo and hi <= p_hi for p_lo, p_hi in parent.intervals):
            return "has a window outside the parent's windows"
    return None


def _subnet(inner: IPNetwork, outer: IPNetwork) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _ip_allow(child: list[IPNetwork], parent: list[IPNetwork]) -> str | None:
    for net in child:
        if not any(_subnet(net, p) for p in parent):
            return "includes a network outside the parent's ip_allow"
    return None


def _ip_deny(child: list[IPNetwork], parent: list[IPNetwork]) -> str | None:
    for net in parent:
        if not any(_subnet(net, c) for c in child):
            return "must deny every network the parent denies"
    return None


def _callers(child: list[str], parent: list[str]) -> str | None:
    return None if set(child) <= set(parent) else "includes a caller the parent does not allow"


def _rate_limit(child: RateLimit, parent: RateLimit) -> str | None:
    if child.requests > parent.requests:
        return "may not allow a larger burst than the parent's"
    # Compare requests/per_seconds as cross products: exact, no floating point.
    if child.requests * parent.per_seconds > parent.requests * child.per_seconds:
        return "may not allow a higher rate than the parent's"
    return None


def _budget(child: Budget, parent: Budget) -> str | None:
    # Another period or unit cannot be compared with the parent's (the parent's budget still
    # binds a clone, but a policy that reads wider than it is would mislead its reader).
    if child.metric != parent.metric or child.per != parent.per:
        return f"must count {parent.metric} per {parent.per}, as the parent's does"
    if child.limit > parent.limit:
        return "may not be larger than the parent's"
    return None


def _kept_on(child: bool, parent: bool) -> str | None:
    return None if child or not parent else "may not be turned off by a clone"


_CHECKS: Sequence[tuple[str, Callable[[Any, Any], str | None]]] = (
    ("allowed_methods", _methods),
    ("allowed_paths", _paths),
    ("not_before", _not_before),
    ("expires_at", _expires_at),
    ("schedule", _schedule),
    ("ip_allow", _ip_allow),
    ("ip_deny", _ip_deny),
    ("callers", _callers),
    ("rate_limit", _rate_limit),
    ("budget", _budget),
    ("require_reason", _kept_on),
    ("proxy_only", _kept_on),
    ("requires_approval", approval_narrower),
)


def check_narrower(child: Policy, parent: Policy) -> None:
    """Refuse (422 naming the field) a child policy that allows anything its parent denies."""
    for name, check in _CHECKS:
        parent_value, child_value = getattr(parent, name), getattr(child, name)
        if parent_value is None or parent_value is False:
            continue
        if child_value is None:
            problem: str | None = "must be set: the parent restricts it"
        else:
            problem = check(child_value, parent_value)
        if problem is not None:
            field = f"policy.{name}"
            raise Unprocessable(f"{field}: {problem} (a clone may only narrow)", field=field)
