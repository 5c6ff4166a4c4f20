"""Grant policy: the document (validated on write), the pure decide(), clone narrowing, rate limits.

It never does I/O or reads a clock: time and rate-limit state come in as parameters.
"""

from vaultgate.server.policy.decide import (
    ALLOWED,
    DENIAL_STATUS,
    Decision,
    RequestFacts,
    authorize,
    decide,
    denial_error,
)
from vaultgate.server.policy.globs import glob_covers, glob_matches
from vaultgate.server.policy.models import Policy, RateLimit, Schedule, Window, parse_policy
from vaultgate.server.policy.narrowing import check_narrower, clone_expiry, merge_for_clone
from vaultgate.server.policy.ratelimit import RateLimiter, RateState

__all__ = [
    "ALLOWED",
    "DENIAL_STATUS",
    "Decision",
    "Policy",
    "RateLimit",
    "RateLimiter",
    "RateState",
    "RequestFacts",
    "Schedule",
    "Window",
    "authorize",
    "check_narrower",
    "clone_expiry",
    "decide",
    "denial_error",
    "glob_covers",
    "glob_matches",
    "merge_for_clone",
    "parse_policy",
]
