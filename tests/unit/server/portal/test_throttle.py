"""The sign-in throttle: counted in the database, before the password check, on both backends."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.portal.throttle import (
    MAX_CONCURRENT_VERIFICATIONS,
    MAX_PER_EMAIL,
    LoginThrottle,
    VerifySlots,
)
from vaultgate.server.storage.engine import create_engine
from vaultgate.server.storage.tables import login_throttle


def test_the_window_opens_at_the_first_attempt_and_then_starts_over(engine: Engine) -> None:
    throttle = LoginThrottle(engine, per_email=2, per_address=100, window=60)
    assert throttle.reserve("a@x", "1.2.3.4", 0) == 0
    assert throttle.reserve("A@x ", "1.2.3.4", 10) == 0  # the same account, however typed
    assert throttle.reserve("a@x", "1.2.3.4", 20) == 40  # the window closes at 60
    assert throttle.reserve("b@x", "1.2.3.4", 20) == 0  # another account is not affected
    assert throttle.reserve("a@x", "1.2.3.4", 59.5) == 1
    assert throttle.reserve("a@x", "1.2.3.4", 60) == 0  # a new window


def test_many_accounts_from_one_address_are_limited_by_address(engine: Engine) -> None:
    throttle = LoginThrottle(engine, per_email=100, per_address=2, window=60)
    assert throttle.reserve("a@x", "1.2.3.4", 0) == 0
    assert throttle.reserve("b@x", "1.2.3.4", 0) == 0
    assert throttle.reserve("c@x", "1.2.3.4", 1) > 0
    assert throttle.reserve("c@x", "5.6.7.8", 1) == 0


def test_many_addresses_cannot_reset_one_account(engine: Engine) -> None:
    """A spray of distinct addresses and emails clears nothing: the account stays limited."""
    throttle = LoginThrottle(engine, per_email=3, per_address=100, window=600)
    allowed = [
        throttle.reserve("victim@x", f"10.0.{i // 250}.{i % 250}", 1) == 0 for i in range(50)
    ]
    for i in range(300):
        throttle.reserve(f"spray-{i}@x", f"10.9.{i // 250}.{i % 250}", 2)
    assert allowed.count(True) == 3
    assert throttle.reserve("victim@x", "10.8.0.1", 3) > 0


def test_a_success_starts_the_account_over(engine: Engine) -> None:
    throttle = LoginThrottle(engine, per_email=2, per_address=3, window=60)
    throttle.reserve("a@x", "1.2.3.4", 0)
    throttle.reserve("a@x", "1.2.3.4", 1)
    throttle.succeeded("a@x", "1.2.3.4")
    assert throttle.reserve("a@x", "1.2.3.4", 2) == 0
    assert throttle.reserve("a@x", "1.2.3.4", 3) == 0  # the address gave its attempt back


def test_concurrent_guesses_get_at_most_the_limit(engine: Engine) -> None:
    """30 guesses at once against a limit of 5: exactly 5 reach the password check."""
    throttle = LoginThrottle(engine, per_email=5, per_address=1000, window=600)
    start = threading.Barrier(30)
    verdicts: list[int] = []

    def guess(i: int) -> None:
        start.wait(timeout=30)
        verdicts.append(throttle.reserve("victim@x", f"10.0.0.{i}", 100))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(verdicts) == 30
    assert verdicts.count(0) == 5


def test_two_nodes_share_one_count(engine: Engine, db_url: str) -> None:
    """Another engine on the same database (another worker or node) sees the same count."""
    other_engine = create_engine(db_url)
    try:
        here = LoginThrottle(engine, per_email=2, per_address=100, window=60)
        there = LoginThrottle(other_engine, per_email=2, per_address=100, window=60)
        assert here.reserve("a@x", "1.1.1.1", 0) == 0
        assert there.reserve("a@x", "2.2.2.2", 1) == 0
        assert here.reserve("a@x", "3.3.3.3", 2) > 0
        assert there.reserve("a@x", "4.4.4.4", 3) > 0
    finally:
        other_engine.dispose()


def test_no_email_or_address_is_stored_in_the_clear(engine: Engine) -> None:
    LoginThrottle(engine).reserve("canary-user@example.com", "203.0.113.9", 0)
    with engine.connect() as conn:
        keys = conn.execute(sa.select(login_throttle.c.key)).scalars().all()
    assert len(keys) == 2
    assert all("canary" not in key and "203.0.113" not in key for key in keys)


def test_verification_slots_turn_away_what_does_not_fit() -> None:
    slots = VerifySlots(2)
    with slots.take() as first, slots.take() as second, slots.take() as third:
        assert (first, second, third) == (True, True, False)
    with slots.take() as again:
        assert again  # released at the end of the block


def test_sign_ins_beyond_the_verification_cap_are_turned_away_uncounted(portal: Any) -> None:
    assert portal.client.get("/portal/login").status_code == 200  # the portal loads with a page
    slots = portal.client.app.state.portal.slots
    held = [slots.take() for _ in range(MAX_CONCURRENT_VERIFICATIONS)]
    for slot in held:
        assert slot.__enter__()
    try:
        busy = portal.login()
        assert busy.status_code == 429
        assert busy.headers["retry-after"] == "2"
        assert "checking many sign-ins" in busy.text
    finally:
        for slot in held:
            slot.__exit__(None, None, None)
    # The twin: with a slot free the same sign-in goes through; the refusal spent no attempt.
    for _ in range(MAX_PER_EMAIL - 1):
        assert portal.login(password="wrong-password-123").status_code == 401
    assert portal.login().status_code == 303
