"""The suite's Hypothesis profile: no example fails for being slow on a loaded CI machine."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def test_the_default_profile_has_no_deadline_and_no_too_slow_check() -> None:
    assert settings.default.deadline is None
    assert HealthCheck.too_slow in settings.default.suppress_health_check
    # A per-test @settings inherits what it does not set, so it keeps no deadline either.
    assert settings(max_examples=300).deadline is None


@settings(max_examples=3, database=None)
@given(st.integers())
def test_a_slow_example_is_not_a_failure(n: int) -> None:
    # Slower than Hypothesis's default 200 ms deadline, as one example on a busy machine is.
    time.sleep(0.25)
    assert isinstance(n, int)
