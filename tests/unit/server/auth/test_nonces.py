from __future__ import annotations

import tracemalloc

from vaultgate.server.auth.keys import ADMIN_KEY_RE, APP_KEY_RE, hint, key_hash, kind_of, mint
from vaultgate.server.auth.sdk import BUCKET_SECONDS, NonceCache


def test_a_nonce_is_accepted_once_within_the_window() -> None:
    cache = NonceCache(window=300)
    assert cache.check_and_add("n1", now=1000.0)
    assert not cache.check_and_add("n1", now=1100.0)
    assert cache.check_and_add("n2", now=1100.0)


def test_a_nonce_is_kept_while_its_signature_is_accepted_then_forgotten() -> None:
    cache = NonceCache(window=300)
    assert cache.check_and_add("n1", now=1000.0, stamp=1000)
    # The timestamp check accepts a request signed at 1000 until 1300 inclusive.
    assert not cache.check_and_add("n1", now=1300.0, stamp=1000)
    # Past it the timestamp check refuses the request anyway, so forgetting is safe; the
    # cache forgets whole buckets, within BUCKET_SECONDS.
    assert cache.check_and_add("n1", now=1300.0 + BUCKET_SECONDS, stamp=1300 + BUCKET_SECONDS)
    assert len(cache) == 1  # the first n1 went with its bucket


def test_a_replay_of_a_request_signed_ahead_of_the_clock_is_refused_until_it_expires() -> None:
    # Attack: a request stamped 200 s ahead (inside the window) is replayed 400 s after it
    # arrived, when its timestamp is still accepted (200 s old). Kept by arrival, the nonce was
    # forgotten at 300 s and the replay passed.
    cache = NonceCache(window=300)
    assert cache.check_and_add("ahead", now=1000.0, stamp=1200)
    assert not cache.check_and_add("ahead", now=1400.0, stamp=1200)
    assert not cache.check_and_add("ahead", now=1500.0, stamp=1200)  # 300 s: still accepted


def test_a_request_signed_behind_the_clock_is_forgotten_once_its_timestamp_expires() -> None:
    # The twin: a stamp 200 s behind needs keeping only 100 s past its arrival.
    cache = NonceCache(window=300)
    assert cache.check_and_add("behind", now=1000.0, stamp=800)
    assert not cache.check_and_add("behind", now=1100.0, stamp=800)
    assert cache.check_and_add("later", now=1100.0 + BUCKET_SECONDS, stamp=1100)
    assert len(cache) == 1


def test_the_cache_is_bounded_and_refuses_what_it_can_no_longer_recognise() -> None:
    cache = NonceCache(window=300, max_entries=3)
    for i in range(100):
        assert cache.check_and_add(f"n{i}", now=1000.0 + i, stamp=1000 + i)
    assert len(cache) <= 3
    # n0 was forced out while still inside the window: its replay must not pass.
    assert not cache.check_and_add("n0", now=1100.0, stamp=1000)
    # So is any request signed no later than the newest forced-out one ...
    assert cache.floor >= 1096
    assert not cache.check_and_add("fresh-but-old", now=1100.0, stamp=cache.floor)
    # ... while requests signed after it still pass.
    assert cache.check_and_add("fresh", now=1100.0, stamp=1100)


def _fill(cache: NonceCache, count: int, start: float = 1000.0) -> list[str]:
    """``count`` nonces arriving evenly over one window, each signed as it arrives."""
    nonces = [f"{i:032x}" for i in range(count)]
    for i, nonce in enumerate(nonces):
        now = start + i * 300 / count
        assert cache.check_and_add(nonce, now=now, stamp=int(now))
    return nonces


def test_every_nonce_of_a_full_window_is_recognised_packed_or_not() -> None:
    cache = NonceCache(window=300)
    nonces = _fill(cache, 20_000)
    assert len(cache) == 20_000
    # Replays arriving at the end of the window, with their own stamps (still accepted).
    for i, nonce in enumerate(nonces[::7]):
        stamp = int(1000.0 + i * 7 * 300 / 20_000)
        assert not cache.check_and_add(nonce, now=1299.0, stamp=stamp)
    # The twin: nonces it never saw pass, and are then refused in turn.
    assert cache.check_and_add("0" * 31 + "g", now=1299.0, stamp=1299)
    assert not cache.check_and_add("0" * 31 + "g", now=1299.0, stamp=1299)


def test_a_window_of_nonces_costs_a_few_bytes_each() -> None:
    # What one worker kept under make bench's signed rows: the nonce strings in an ordered
    # dict took about 280 bytes each (some 25 MiB a worker); packed they take about 11.
    nonces = [f"{i:032x}" for i in range(60_000)]
    tracemalloc.start()
    try:
        cache = NonceCache(window=300)
        before = tracemalloc.get_traced_memory()[0]
        for i, nonce in enumerate(nonces):
            now = 1000.0 + i * 300 / len(nonces)
            cache.check_and_add(nonce, now=now, stamp=int(now))
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept / len(nonces) < 40, kept / len(nonces)


def test_keys_have_the_documented_shapes_and_hash_deterministically() -> None:
    admin, app = mint("admin"), mint("app")
    assert ADMIN_KEY_RE.match(admin) and len(admin) == len("vg_admin_") + 40
    assert APP_KEY_RE.match(app) and len(app) == len("alter_key_") + 40
    assert (kind_of(admin), kind_of(app), kind_of("alter_key_short"), kind_of("")) == (
        "admin",
        "app",
        None,
        None,
    )
    assert key_hash(b"k" * 32, app) == key_hash(b"k" * 32, app) != key_hash(b"j" * 32, app)
    assert app not in key_hash(b"k" * 32, app)
    assert hint(app).endswith(app[-4:]) and app[10:30] not in hint(app)
