"""The policy decision: a pure function of the policy, the request's facts and the time.

``decide`` checks, in this order: validity window, schedule, caller address, caller name,
proxy_only, method, path, reason, and the rate limit last, so that a request denied for any other
reason never spends a token. ``authorize`` is the call for the request path: it runs ``decide``
and only then counts the request against the grant's bucket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from vaultgate.server.errors import Forbidden, InvalidInput, RateLimited, VaultError
from vaultgate.server.policy.globs import glob_matches
from vaultgate.server.policy.models import Policy
from vaultgate.server.policy.ratelimit import RateLimiter, RateState

Mode = Literal["retrieve", "proxy", "transparent"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# These codes go on the wire to official Alter clients: never rename one.
DENIAL_STATUS: dict[str, int] = {
    "grant_not_yet_valid": 403,
    "grant_expired": 403,
    "outside_schedule": 403,
    "ip_not_allowed": 403,
    "ip_denied": 403,
    "caller_not_allowed": 403,
    "method_not_allowed": 403,
    "path_not_allowed": 403,
    "reason_required": 403,
    "restricted_grant_requires_proxy": 403,
    "rate_limit_exceeded": 429,
    "hitl_grant_requires_proxy": 400,
}

_MESSAGES: dict[str, str] = {
    "grant_not_yet_valid": "the grant is not valid yet",
    "grant_expired": "the grant has expired",
    "outside_schedule": "the grant may not be used at this time",
    "ip_not_allowed": "the caller's address is not in the grant's allowed networks",
    "ip_denied": "the caller's address is in the grant's denied networks",
    "caller_not_allowed": "the caller is not allowed to use this grant",
    "method_not_allowed": "the HTTP method is not allowed by the grant's policy",
    "path_not_allowed": "the path is not allowed by the grant's policy",
    "reason_required": "the grant's policy requires a reason",
    "restricted_grant_requires_proxy": "this grant's credential is only used through the proxy",
    "rate_limit_exceeded": "the grant's rate limit is exceeded",
    "hitl_grant_requires_proxy": (
        "this grant's calls wait for human approval, so its credential is never handed out; "
        "use proxy mode"
    ),
}


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What policy may look at. ``path`` is already normalised by the egress layer."""

    method: str
    path: str
    client_ip: IPAddress | None
    caller: str | None
    reason: str | None
    mode: Mode
    agent: str | None = None  # the verified agent's name (its own key), never the caller's claim


# A ``callers`` entry naming a managed agent: matched against the verified agent only, so that
# asserting ``X-Alter-Caller: agent:deployer`` never passes for the agent ``deployer``.
AGENT_CALLER = "agent:"


def caller_allowed(callers: list[str], facts: RequestFacts) -> bool:
    for entry in callers:
        if entry.startswith(AGENT_CALLER):
            if facts.agent is not None and entry[len(AGENT_CALLER) :] == facts.agent:
                return True
        elif entry == facts.caller:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, its reason code, and the policy field (``rule``) that decided it."""

    allowed: bool
    code: str
    rule: str
    retry_after: int | None = None


ALLOWED = Decision(allowed=True, code="allowed", rule="policy")


def _deny(code: str, rule: str) -> Decision:
    return Decision(allowed=False, code=code, rule=rule)


def _rate_denial(state: RateState) -> Decision:
    return Decision(False, "rate_limit_exceeded", "rate_limit", state.retry_after_seconds)


def _check_time(policy: Policy, now: datetime) -> Decision | None:
    if policy.not_before is not None and now < policy.not_before:
        return _deny("grant_not_yet_valid", "not_before")
    if policy.expires_at is not None and now >= policy.expires_at:
        return _deny("grant_expired", "expires_at")
    if policy.schedule is not None and not policy.schedule.contains(now):
        return _deny("outside_schedule", "schedule")
    return None


def _check_ip(policy: Policy, ip: IPAddress | None) -> Decision | None:
    if policy.ip_deny is None and policy.ip_allow is None:
        return None
    if ip is None:
        # An unknown address cannot be shown to be allowed, nor to be outside the deny list.
        return _deny("ip_not_allowed", "ip_allow" if policy.ip_allow is not None else "ip_deny")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 for every rule
    if policy.ip_deny is not None and any(ip in net for net in policy.ip_deny):
        return _deny("ip_denied", "ip_deny")
    if policy.ip_allow is not None and not any(ip in net for net in policy.ip_allow):
        return _deny("ip_not_allowed", "ip_allow")
    return None


def _check_request(policy: Policy, facts: RequestFacts) -> Decision | None:
    if policy.callers is not None and not caller_allowed(policy.callers, facts):
        return _deny("caller_not_allowed", "callers")
    if policy.proxy_only and facts.mode == "retrieve":
        return _deny("restricted_grant_requires_proxy", "proxy_only")
    if policy.requires_approval is not None and facts.mode == "retrieve":
        # A token handed out could make any call unseen: approval only works in proxy mode.
        return _deny("hitl_grant_requires_proxy", "requires_approval")
    if policy.allowed_methods is not None and facts.method.upper() not in policy.allowed_methods:
        return _deny("method_not_allowed", "allowed_methods")
    if policy.allowed_paths is not None and not any(
        glob_matches(glob, facts.path) for glob in policy.allowed_paths
    ):
        return _deny("path_not_allowed", "allowed_paths")
    if policy.require_reason and not (facts.reason and facts.reason.strip()):
        return _deny("reason_required", "require_reason")
    return None


def decide(
    policy: Policy, facts: RequestFacts, now: datetime, *, rate: RateState | None = None
) -> Decision:
    """Allow or deny one request. ``now`` must be timezone-aware.

    ``rate`` is the limiter's answer for this request; None means it was not consulted, and the
    rate rule is then skipped (``authorize`` consults it only after everything else allowed).
    """
    if now.tzinfo is None:
        # A naive time would be read as the server's local time: schedules would silently shift.
        raise ValueError("decide() needs a timezone-aware now")
    denial = (
        _check_time(policy, now)
        or _check_ip(policy, facts.client_ip)
        or _check_request(policy, facts)
    )
    if denial is not None:
        return denial
    if policy.rate_limit is not None and rate is not None and not rate.allowed:
        return _rate_denial(rate)
    return ALLOWED


def authorize(
    policy: Policy, facts: RequestFacts, now: datetime, *, key: str, limiter: RateLimiter
) -> Decision:
    """``decide``, counting the request against ``key``'s bucket only if all else allowed it."""
    decision = decide(policy, facts, now)
    if not decision.allowed or policy.rate_limit is None:
        return decision
    state = limiter.check(key, policy.rate_limit, now.timestamp())
    return decision if state.allowed else _rate_denial(state)


def denial_error(decision: Decision, retry_after: int | None = None) -> VaultError:
    """The error a denied decision becomes on the wire (403, or 429 with Retry-After)."""
    if decision.allowed:
        raise ValueError("an allowed decision is not an error")
    message = _MESSAGES.get(decision.code, "denied by the grant's policy")
    if DENIAL_STATUS.get(decision.code) == 429:
        wait = retry_after if retry_after is not None else decision.retry_after
        return RateLimited(message, retry_after=wait or 1, code=decision.code)
    if DENIAL_STATUS.get(decision.code) == 400:
        return InvalidInput(message, code=decision.code)  # the status official clients map
    return Forbidden(message, code=decision.code)
