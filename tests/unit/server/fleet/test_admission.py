"""The checks inside the use's own transaction: stale views, replays, exact sliding windows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from vaultgate.server.errors import RateLimited, Unauthenticated
from vaultgate.server.fleet import changes
from vaultgate.server.fleet.admission import Admission, Admitter, StaleView, nonce_key
from vaultgate.server.fleet.changes import Changes
from vaultgate.server.policy import RateLimit
from vaultgate.server.storage.engine import create_engine, migrate

THREE_A_MINUTE = RateLimit(requests=3, per_seconds=60)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = create_engine(f"sqlite:///{tmp_path / 'v.db'}")
    migrate(made)
    yield made
    made.dispose()


def _admit(engine: Engine, admitter: Admitter, *items: Admission) -> list[Exception | None]:
    with engine.begin() as conn:
        return admitter.admit(conn, list(items))


def _limited(at: float, *budgets: tuple[str, RateLimit]) -> Admission:
    return Admission(at=at, budgets=budgets or (("g", THREE_A_MINUTE),))


def _wait(verdict: Exception | None) -> int:
    assert isinstance(verdict, RateLimited), verdict
    assert verdict.code == "rate_limit_exceeded"
    return verdict.retry_after


def test_a_window_admits_its_requests_then_says_when_the_oldest_leaves(engine: Engine) -> None:
    admitter = Admitter(Changes())
    verdicts = _admit(engine, admitter, *(_limited(t) for t in (1000.0, 1000.5, 1001.0, 1002.0)))
    assert verdicts[:3] == [None, None, None]
    assert _wait(verdicts[3]) == 58  # the use at 1000.0 leaves at 1060.0
    assert _wait(_admit(engine, admitter, _limited(1059.9))[0]) == 1
    # At 1060.0 the first use has left the window: exactly one more place, not two.
    first, second = _admit(engine, admitter, _limited(1060.0), _limited(1060.1))
    assert first is None
    assert _wait(second) == 1  # the use at 1000.5 leaves at 1060.5


def test_a_clone_spends_its_parents_budget_and_a_refusal_spends_nothing(engine: Engine) -> None:
    admitter = Admitter(Changes())
    one_a_minute = RateLimit(requests=1, per_seconds=60)
    clone = (("clone", one_a_minute), ("parent", THREE_A_MINUTE))
    assert _admit(engine, admitter, _limited(10.0, *clone)) == [None]
    # The clone's own limit refuses the next two: the parent's budget is not touched by them.
    refused = _admit(engine, admitter, _limited(11.0, *clone), _limited(12.0, *clone))
    assert [_wait(v) for v in refused] == [59, 58]
    parent_only = _admit(engine, admitter, *(_limited(t, clone[1]) for t in (13.0, 14.0, 15.0)))
    assert parent_only[:2] == [None, None]
    assert _wait(parent_only[2]) == 55  # the clone's use at 10.0 counted against the parent


def test_a_nonce_is_accepted_once_even_twice_in_one_batch(engine: Engine) -> None:
    admitter = Admitter(Changes())
    nonce = nonce_key("key-1", "abc")
    first, twin = _admit(engine, admitter, Admission(1.0, nonce=nonce), Admission(1.0, nonce=nonce))
    assert first is None
    assert isinstance(twin, Unauthenticated) and twin.code == "replayed_request"
    [again] = _admit(engine, admitter, Admission(2.0, nonce=nonce))
    assert isinstance(again, Unauthenticated) and again.code == "replayed_request"
    # The same nonce under another key is another request.
    assert _admit(engine, admitter, Admission(3.0, nonce=nonce_key("key-2", "abc"))) == [None]


def test_a_use_decided_on_a_stale_view_is_refused_and_spends_nothing(engine: Engine) -> None:
    seen = Changes()
    admitter = Admitter(seen)
    with engine.begin() as conn:
        changes.bump(conn)
    nonce = nonce_key("key-1", "n")
    stale = Admission(
        5.0, view=0, nonce=nonce, budgets=(("g", RateLimit(requests=1, per_seconds=60)),)
    )
    [verdict] = _admit(engine, admitter, stale)
    assert isinstance(verdict, StaleView) and verdict.current == 1
    assert seen.current == 1  # the process learnt the count from the batch itself
    # Decided again on the fresh view, the same request (same nonce, same budget) goes through.
    fresh = Admission(5.1, view=1, nonce=nonce, budgets=stale.budgets)
    assert _admit(engine, admitter, fresh) == [None]
