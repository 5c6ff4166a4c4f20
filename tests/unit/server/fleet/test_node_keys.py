"""A node's key set grows while it runs, never shrinks; re-wrap waits for every live node."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from vaultgate.server.crypto import Barrier, FileKeyProvider
from vaultgate.server.fleet.heartbeat import LIVE_SECONDS, beat, fleet_active
from vaultgate.server.keys_at_rest import NodeKeys, RewrapRefused, activate_for_rewrap
from vaultgate.server.settings import load_settings
from vaultgate.server.storage.engine import create_engine, migrate


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    made = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(made)
    return made


def _node(tmp_path: Path) -> tuple[NodeKeys, Path]:
    key_file = tmp_path / "master.key"
    keyring = FileKeyProvider.create(key_file)
    settings = load_settings({"VAULTGATE_MASTER_KEY_FILE": str(key_file)})
    return NodeKeys(settings, Barrier(keyring)), key_file


def test_a_staged_key_is_held_at_once_and_sealed_under_only_when_the_fleet_says(
    tmp_path: Path,
) -> None:
    keys, key_file = _node(tmp_path)
    old = keys.barrier.active_key_id
    new = FileKeyProvider.add_key(key_file, activate=False).key_id
    assert keys.refresh(None) == (old, new)
    assert keys.barrier.active_key_id == old  # staged: nothing sealed under it yet
    keys.refresh(new)
    assert keys.barrier.active_key_id == new


def test_a_reread_that_drops_a_held_key_is_refused(tmp_path: Path) -> None:
    keys, key_file = _node(tmp_path)
    shutil.copy2(key_file, tmp_path / "before")
    new = FileKeyProvider.add_key(key_file, activate=False).key_id
    keys.refresh(None)
    shutil.copy2(tmp_path / "before", key_file)  # an older copy of the file, without the key
    assert new in keys.refresh(None)
    assert keys.holds(new)


def test_rewrap_refuses_while_a_live_node_lacks_the_key(tmp_path: Path, engine: Engine) -> None:
    _, key_file = _node(tmp_path)
    new = FileKeyProvider.add_key(key_file, activate=False).key_id
    keyring = FileKeyProvider(key_file).load()
    now = 1_000_000.0
    with engine.begin() as conn:
        beat(conn, "node-b/7", [keyring.root.key_id], now)
        beat(conn, "gone/9", [keyring.root.key_id], now - LIVE_SECONDS - 1)  # not live
        beat(conn, "node-a/3", keyring.key_ids, now)
    with pytest.raises(RewrapRefused) as refused:
        activate_for_rewrap(engine, keyring, new, wait=0, clock=lambda: now)
    assert "node-b/7" in str(refused.value) and new in str(refused.value)
    assert "gone/9" not in str(refused.value) and "node-a/3" not in str(refused.value)
    with engine.connect() as conn:
        assert fleet_active(conn) is None  # nothing changed
    # The allowed twin: once node-b reports the key, the re-wrap goes ahead.
    with engine.begin() as conn:
        beat(conn, "node-b/7", keyring.key_ids, now)
    moved = activate_for_rewrap(engine, keyring, new, wait=0, clock=lambda: now)
    assert moved.active.key_id == new
    with engine.connect() as conn:
        assert fleet_active(conn) == new
