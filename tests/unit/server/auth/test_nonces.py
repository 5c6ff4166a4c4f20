from __future__ import annotations

from vaultgate.server.auth.keys import ADMIN_KEY_RE, APP_KEY_RE, hint, key_hash, kind_of, mint
from vaultgate.server.auth.sdk import NonceCache


def test_a_nonce_is_accepted_once_within_the_window() -> None:
    cache = NonceCache(window=300)
    assert cache.check_and_add("n1", now=1000.0)
    assert not cache.check_and_add("n1", now=1100.0)
    assert cache.check_and_add("n2", now=1100.0)


def test_nonces_older_than_the_window_are_forgotten() -> None:
    cache = NonceCache(window=300)
    assert cache.check_and_add("n1", now=1000.0)
    # Past the window the timestamp check refuses the request anyway, so forgetting is safe.
    assert cache.check_and_add("other", now=1301.0)
    assert cache.check_and_add("n1", now=1302.0)


def test_the_cache_is_bounded_and_refuses_what_it_can_no_longer_recognise() -> None:
    cache = NonceCache(window=300, max_entries=3)
    for i in range(10):
        assert cache.check_and_add(f"n{i}", now=1000.0 + i, stamp=1000 + i)
    assert len(cache._seen) <= 3
    # n0 was forced out while still inside the window: its replay must not pass.
    assert not cache.check_and_add("n0", now=1010.0, stamp=1000)
    # So is any request signed no later than the newest forced-out one ...
    assert not cache.check_and_add("fresh-but-old", now=1010.0, stamp=1005)
    # ... while requests signed after it still pass.
    assert cache.check_and_add("fresh", now=1010.0, stamp=1010)


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
