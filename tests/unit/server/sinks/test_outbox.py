"""The audit table as each sink's outbox, on SQLite and PostgreSQL: leases, cursor, lag."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from unit.server.sinks.conftest import NOW, append_events
from vaultgate.server.auth.services import Actor
from vaultgate.server.crypto import Barrier, Keyring, MasterKey
from vaultgate.server.keys_at_rest import rewrap_all
from vaultgate.server.sinks import SinkCreate, SinkStore, outbox
from vaultgate.server.sinks.store import open_secret
from vaultgate.server.storage.engine import reading


def _file_sink(store: SinkStore, start: str = "now") -> str:
    body = SinkCreate.model_validate(
        {"name": "trail", "kind": "file", "config": {"path": "/tmp/x.jsonl"}, "start": start}
    )
    return str(store.create(body, Actor())["id"])


def test_one_owner_holds_a_sink_until_its_lease_lapses(engine: Engine, store: SinkStore) -> None:
    sink_id = _file_sink(store)
    assert outbox.claim(engine, sink_id, "node-a", now=1000.0, ttl=30)
    assert not outbox.claim(engine, sink_id, "node-b", now=1010.0, ttl=30)
    assert outbox.claim(engine, sink_id, "node-a", now=1020.0, ttl=30)  # renewal
    assert not outbox.claim(engine, sink_id, "node-b", now=1049.0, ttl=30)
    assert outbox.claim(engine, sink_id, "node-b", now=1051.0, ttl=30)  # a lapsed lease
    # node-a lost it: its late acknowledgement must not move the cursor.
    append_events(engine, 3)
    assert not outbox.advance(engine, sink_id, "node-a", 10, NOW)
    assert store.find(sink_id).cursor == 1  # its own creation event (seq 1) is not sent


def test_the_cursor_moves_only_forward_and_a_failure_keeps_it(
    engine: Engine, store: SinkStore
) -> None:
    sink_id = _file_sink(store, start="beginning")
    append_events(engine, 5)
    assert outbox.claim(engine, sink_id, "me", now=0.0, ttl=1e12)
    events = outbox.batch(engine, 0, 4)
    assert [e["seq"] for e in events] == [1, 2, 3, 4]  # seq 1 is sink:create
    assert events[0]["event"] == "sink:create" and "provider" in events[1]
    assert outbox.advance(engine, sink_id, "me", 4, NOW)
    assert not outbox.advance(engine, sink_id, "me", 3, NOW)  # never backwards
    outbox.failed(engine, sink_id, "me", "webhook: HTTP 503", retry_at=99.0)
    outbox.failed(engine, sink_id, "me", "webhook: HTTP 503", retry_at=199.0)
    sink = store.find(sink_id)
    assert (sink.cursor, sink.attempts, sink.next_attempt_at) == (4, 2, 199.0)
    assert sink.last_error == "webhook: HTTP 503"
    assert [e["seq"] for e in outbox.batch(engine, sink.cursor, 100)] == [5, 6]
    assert outbox.advance(engine, sink_id, "me", 6, NOW)
    sink = store.find(sink_id)
    assert (sink.attempts, sink.last_error) == (0, None)


def test_lag_counts_events_after_the_cursor_and_the_oldest_ones_age(
    engine: Engine, store: SinkStore
) -> None:
    _file_sink(store, start="beginning")
    append_events(engine, 9)
    later = NOW + timedelta(seconds=90)
    with reading(engine) as conn:
        assert outbox.lag(conn, 10, later) == outbox.Lag(0, 0.0)
        lag = outbox.lag(conn, 4, later)
    assert lag.events == 6 and lag.seconds == 90.0


def test_a_new_sink_starts_after_the_trail_so_far_unless_told_otherwise(
    engine: Engine, store: SinkStore
) -> None:
    append_events(engine, 7)
    sink_id = _file_sink(store)
    assert store.find(sink_id).cursor == 8  # past its own creation event
    state = store.public(store.find(sink_id))["state"]
    assert state["lag_events"] == 0


def test_master_key_rotation_rewraps_a_sinks_webhook_secret(
    engine: Engine, store: SinkStore
) -> None:
    body = SinkCreate.model_validate(
        {
            "name": "hook",
            "kind": "webhook",
            "config": {"url": "https://siem.example.com/"},
            "secret": "rotate-me-0123456789",
        }
    )
    sink_id = str(store.create(body, Actor())["id"])
    old = MasterKey("mk_test", bytes(range(32)))
    new = MasterKey("mk_new", bytes(range(100, 132)))
    assert rewrap_all(engine, Barrier(Keyring([old, new], active_id="mk_new"))) == (1, 1, 0, ())
    only_new = Barrier(Keyring([new], active_id="mk_new"))
    assert open_secret(only_new, store.find(sink_id)) == b"rotate-me-0123456789"
    assert rewrap_all(engine, only_new) == (0, 1, 0, ())  # re-run: nothing left to move
