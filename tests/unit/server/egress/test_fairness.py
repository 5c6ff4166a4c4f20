"""The per-grant in-flight share: counted, refused past the limit, given back exactly once."""

from __future__ import annotations

import pytest

from vaultgate.server.egress.fairness import InflightLimit, hold, release_held
from vaultgate.server.errors import RateLimited


def test_the_share_is_refused_past_the_limit_and_free_again_after_a_release() -> None:
    limit = InflightLimit(2)
    first, _second = limit.enter("g"), limit.enter("g")
    with pytest.raises(RateLimited) as caught:
        limit.enter("g")
    assert caught.value.status == 429 and caught.value.code == "concurrency_limit_exceeded"
    assert "VAULTGATE_MAX_INFLIGHT_PER_GRANT" in caught.value.message
    assert caught.value.extra["limit"] == 2
    limit.enter("other").release()  # another grant has its own share
    first.release()
    first.release()  # idempotent: one request gives back one place
    assert limit.in_flight("g") == 1
    limit.enter("g")
    assert limit.in_flight("g") == 2


def test_places_held_on_a_scope_are_released_together_once() -> None:
    limit = InflightLimit(3)
    scope: dict[str, object] = {}
    hold(scope, limit.enter("g"))
    hold(scope, limit.enter("g"))
    release_held(scope)
    release_held(scope)
    assert limit.in_flight("g") == 0


def test_a_limit_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        InflightLimit(0)
