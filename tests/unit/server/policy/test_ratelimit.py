"""The token bucket per grant: limits, refill, Retry-After, separate keys, bounded memory."""

from __future__ import annotations

import pytest

from vaultgate.server.policy import RateLimit, RateLimiter, RateState

THREE_PER_MINUTE = RateLimit(requests=3, per_seconds=60)


def test_allows_the_burst_then_refuses_with_retry_after() -> None:
    limiter = RateLimiter()
    assert [limiter.check("g", THREE_PER_MINUTE, 0.0).allowed for _ in range(3)] == [True] * 3
    assert limiter.check("g", THREE_PER_MINUTE, 0.0) == RateState(False, 20)
    assert limiter.check("g", THREE_PER_MINUTE, 5.0) == RateState(False, 15)


def test_refills_at_the_configured_rate() -> None:
    limiter = RateLimiter()
    for _ in range(3):
        limiter.check("g", THREE_PER_MINUTE, 100.0)
    assert not limiter.check("g", THREE_PER_MINUTE, 119.9).allowed
    assert limiter.check("g", THREE_PER_MINUTE, 120.0).allowed
    assert not limiter.check("g", THREE_PER_MINUTE, 120.0).allowed


def test_long_run_rate_never_exceeds_the_limit() -> None:
    limiter = RateLimiter()
    limit = RateLimit(requests=5, per_seconds=10)
    allowed = sum(limiter.check("g", limit, t / 10).allowed for t in range(10_000))  # 1000 s
    assert allowed <= 5 + 1000 * 5 // 10
    assert allowed >= 1000 * 5 // 10


def test_retry_after_is_a_whole_second_at_least() -> None:
    limiter = RateLimiter()
    fast = RateLimit(requests=100, per_seconds=1)
    for _ in range(100):
        limiter.check("g", fast, 0.0)
    assert limiter.check("g", fast, 0.0) == RateState(False, 1)


def test_keys_have_separate_buckets() -> None:
    limiter = RateLimiter()
    one = RateLimit(requests=1, per_seconds=60)
    assert limiter.check("a", one, 0.0).allowed
    assert not limiter.check("a", one, 0.0).allowed
    assert limiter.check("b", one, 0.0).allowed


def test_a_clock_stepping_back_mints_no_tokens() -> None:
    limiter = RateLimiter()
    one = RateLimit(requests=1, per_seconds=60)
    assert limiter.check("g", one, 1000.0).allowed
    assert not limiter.check("g", one, 0.0).allowed
    assert not limiter.check("g", one, 1059.0).allowed
    assert limiter.check("g", one, 1060.0).allowed


def test_a_lowered_limit_applies_at_once() -> None:
    limiter = RateLimiter()
    assert limiter.check("g", RateLimit(requests=10, per_seconds=1), 0.0).allowed
    lowered = RateLimit(requests=1, per_seconds=60)
    assert limiter.check("g", lowered, 0.0).allowed  # 9 tokens left, capped to 1, one spent
    assert not limiter.check("g", lowered, 0.0).allowed


def test_memory_is_bounded() -> None:
    limiter = RateLimiter(max_keys=10)
    one = RateLimit(requests=1, per_seconds=60)
    for i in range(100):
        limiter.check(f"g{i}", one, 0.0)
    assert len(limiter) <= 10
    # The most recent keys are kept, so they are still limited.
    assert not limiter.check("g99", one, 0.0).allowed


def test_idle_buckets_are_swept() -> None:
    limiter = RateLimiter()
    one = RateLimit(requests=1, per_seconds=1)
    for i in range(4):
        limiter.check(f"old{i}", one, 0.0)
    limiter.check("new", one, 10.0)
    assert len(limiter) == 1
    # A bucket that is not full yet is remembered.
    limiter.check("busy", RateLimit(requests=1, per_seconds=3600), 10.0)
    limiter.check("other", one, 20.0)
    assert not limiter.check("busy", RateLimit(requests=1, per_seconds=3600), 20.0).allowed


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        RateLimiter(max_keys=0)
