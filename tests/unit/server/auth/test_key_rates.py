"""A limited key's rate, counted on its row (auth/key_rates.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.auth.key_rates import Bucket, KeyRates
from vaultgate.server.errors import RateLimited
from vaultgate.server.storage import tables as t

T0 = 1_800_000_000.0


def _key(engine: Engine, rpm: int | None, parent: str | None = None) -> str:
    key_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            t.api_keys.insert().values(
                id=key_id,
                kind="app",
                name="k",
                key_hash=uuid.uuid4().hex,
                hint="vg_…",
                created_at=datetime.now(UTC),
            )
        )
        conn.execute(
            t.key_controls.insert().values(
                key_id=key_id,
                parent_key_id=parent,
                key_type="dk" if parent else "rk",
                scopes=[],
                rate_limit_rpm=rpm,
            )
        )
    return key_id


def _tat(engine: Engine, key_id: str) -> float | None:
    query = sa.select(t.key_controls.c.rate_tat).where(t.key_controls.c.key_id == key_id)
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def spend(engine: Engine, buckets: tuple[Bucket, ...], now: float) -> None:
    """One request, as a fresh worker would make it (nothing remembered)."""
    KeyRates(engine).spend(buckets, now)


def test_a_key_gets_its_rate_as_a_burst_then_one_request_per_interval(engine: Engine) -> None:
    key = _key(engine, rpm=3)
    bucket = (Bucket(key, 3),)
    for _ in range(3):
        spend(engine, bucket, T0)
    with pytest.raises(RateLimited) as refused:
        spend(engine, bucket, T0)
    # A place frees one interval (60 / 3 = 20 s) after the burst.
    assert refused.value.retry_after == 20
    assert refused.value.extra["scope"] == "key" and refused.value.extra["limit"] == 3
    assert "this key's rate limit of 3 requests per minute" in refused.value.message
    with pytest.raises(RateLimited):
        spend(engine, bucket, T0 + 19.9)
    spend(engine, bucket, T0 + 20)  # the allowed twin: one more, once the interval passed
    with pytest.raises(RateLimited):
        spend(engine, bucket, T0 + 20)
    # An idle key refills to a full burst, never more.
    for _ in range(3):
        spend(engine, bucket, T0 + 3600)
    with pytest.raises(RateLimited):
        spend(engine, bucket, T0 + 3600)


def test_a_rate_whose_intervals_do_not_add_up_exactly_still_allows_its_whole_burst(
    engine: Engine,
) -> None:
    key = _key(engine, rpm=7)  # 60 / 7 s per request: seven of them round to just over 60
    for _ in range(7):
        spend(engine, (Bucket(key, 7),), T0)
    with pytest.raises(RateLimited):
        spend(engine, (Bucket(key, 7),), T0)


def test_derived_keys_spend_their_parents_rate_and_a_refusal_spends_nothing(
    engine: Engine,
) -> None:
    # Attack: derive two children from a 2-a-minute key and use each up to its own copy of the
    # rate. Counted apart, the pair would get 4 requests; spending the parent's bucket too, 2.
    parent = _key(engine, rpm=2)
    children = [_key(engine, rpm=2, parent=parent) for _ in range(2)]
    lineage = [(Bucket(c, 2), Bucket(parent, 2, inherited=True)) for c in children]
    spend(engine, lineage[0], T0)
    spend(engine, lineage[1], T0)
    before = _tat(engine, children[0])
    with pytest.raises(RateLimited) as refused:
        spend(engine, lineage[0], T0)
    assert "the key this one was derived from (2 requests per minute)" in refused.value.message
    assert refused.value.retry_after == 30
    # The refusal came from the parent's bucket; the child's own, taken first, was given back.
    assert _tat(engine, children[0]) == before
    with pytest.raises(RateLimited):
        spend(engine, (Bucket(parent, 2),), T0)
    # The allowed twin: a sibling of an unlimited parent is held to its own rate only.
    free = _key(engine, rpm=None)
    sibling = _key(engine, rpm=2, parent=free)
    spend(engine, (Bucket(sibling, 2),), T0)
    spend(engine, (Bucket(sibling, 2),), T0)


def test_a_full_bucket_is_refused_in_memory_until_it_refills(engine: Engine) -> None:
    # A key flooding past its rate must not cost a write transaction per request: the worker
    # that found the bucket full refuses until the refill it computed, with no I/O.
    key = _key(engine, rpm=2)
    bucket = (Bucket(key, 2),)
    worker, other = KeyRates(engine), KeyRates(engine)
    worker.spend(bucket, T0)
    other.spend(bucket, T0)
    with pytest.raises(RateLimited) as first:
        worker.spend(bucket, T0)
    assert first.value.retry_after == 30
    with pytest.raises(RateLimited) as remembered:
        worker.refuse_known_full(bucket, T0 + 10)
    assert remembered.value.retry_after == 20
    # The allowed twin: at the refill the memory lets the request through to the bucket, which
    # is what decides (a worker that remembers nothing asks the bucket at once).
    worker.refuse_known_full(bucket, T0 + 30)
    worker.spend(bucket, T0 + 30)
    other.refuse_known_full(bucket, T0 + 30)
    with pytest.raises(RateLimited):
        other.spend(bucket, T0 + 30)


def test_a_refusal_never_asks_for_more_than_one_interval(engine: Engine) -> None:
    # A worker's clock reading can precede another worker's commit: computed from it, the wait
    # came out a second over the interval (Retry-After 31 for a 2-a-minute key).
    key = _key(engine, rpm=2)
    bucket = (Bucket(key, 2),)
    spend(engine, bucket, T0 + 1)
    spend(engine, bucket, T0 + 1)
    with pytest.raises(RateLimited) as refused:
        spend(engine, bucket, T0)
    assert refused.value.retry_after == 30
