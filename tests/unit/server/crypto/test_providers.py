"""Master key providers: the environment value and the 0600 key file."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vaultgate.server.crypto import (
    EnvKeyProvider,
    FileKeyProvider,
    MasterKeyError,
    MasterKeyProvider,
    kcv,
)

MATERIAL_A = bytes(range(32))
MATERIAL_B = bytes(range(100, 132))
B64_A = base64.b64encode(MATERIAL_A).decode()
B64_B = base64.b64encode(MATERIAL_B).decode()
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- environment ------------------------------------------------------------------------


def test_env_single_key_gets_a_stable_id_from_its_kcv() -> None:
    ring = EnvKeyProvider(B64_A).load()
    assert ring.key_ids == (f"mk_{kcv(MATERIAL_A)[:8]}",)
    assert ring.active.material == MATERIAL_A
    assert EnvKeyProvider(f"  {B64_A}\n").load().key_ids == ring.key_ids


def test_env_accepts_urlsafe_base64() -> None:
    urlsafe = base64.urlsafe_b64encode(MATERIAL_B).decode()
    assert urlsafe != B64_B  # this material exercises the '-' / '_' alphabet
    assert EnvKeyProvider(urlsafe).load().active.material == MATERIAL_B


def test_env_list_is_newest_first_active_first_root_last() -> None:
    ring = EnvKeyProvider(f"mk_new:{B64_B}, mk_old:{B64_A}").load()
    assert ring.active.key_id == "mk_new"
    assert ring.root.key_id == "mk_old"
    assert ring.root.material == MATERIAL_A
    assert ring.key_ids == ("mk_old", "mk_new")


def test_env_list_entry_without_id_keeps_its_derived_id() -> None:
    # A single bare key rotated by prepending a named one keeps the id it already had.
    bare_id = EnvKeyProvider(B64_A).load().active.key_id
    ring = EnvKeyProvider(f"mk_new:{B64_B},{B64_A}").load()
    assert ring.root.key_id == bare_id
    assert ring.active.key_id == "mk_new"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "VAULTGATE_MASTER_KEY is empty"),
        ("   ", "VAULTGATE_MASTER_KEY is empty"),
        ("not base64 at all!", "entry 1 is not valid base64"),
        (base64.b64encode(b"x" * 16).decode(), "entry 1 decodes to 16 bytes"),
        (f"mk_a:{B64_A},", "entry 2 is empty"),
        (f"bad id!:{B64_A}", "entry 1 has an invalid key id"),
        (f"mk_a:{B64_A},mk_a:{B64_B}", "mk_a appears twice"),
        (f"mk_a:{B64_A},mk_b:{B64_B[:-4]}", "entry 2 decodes to 30 bytes"),
    ],
)
def test_env_errors_are_clear_and_never_echo_the_value(value: str, message: str) -> None:
    with pytest.raises(MasterKeyError, match=message) as caught:
        EnvKeyProvider(value).load()
    text = str(caught.value)
    for fragment in (B64_A, B64_B, B64_B[:-4], "not base64 at all", "bad id!"):
        assert fragment not in text


def test_env_provider_repr_hides_the_value() -> None:
    provider = EnvKeyProvider(B64_A)
    assert B64_A not in repr(provider)
    assert "**********" in repr(provider)


def test_either_provider_serves_where_the_protocol_is_expected(tmp_path: Path) -> None:
    FileKeyProvider.create(tmp_path / "k")
    providers: list[MasterKeyProvider] = [EnvKeyProvider(B64_A), FileKeyProvider(tmp_path / "k")]
    rings = [provider.load() for provider in providers]
    assert rings[0].active.material == MATERIAL_A
    assert rings[1].active.material != MATERIAL_A


# --- key file ---------------------------------------------------------------------------


def test_create_writes_0600_json_and_load_reads_it_back(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    created = FileKeyProvider.create(path, now=NOW)

    assert _mode(path) == 0o600
    document = json.loads(path.read_text())
    assert document == {
        "active": created.active.key_id,
        "keys": [
            {
                "id": created.active.key_id,
                "key": base64.b64encode(created.active.material).decode(),
                "created_at": "2025-01-02T03:04:05+00:00",
            }
        ],
    }
    loaded = FileKeyProvider(path).load()
    assert loaded.key_ids == created.key_ids
    assert loaded.active == created.active
    assert loaded.active.created_at == NOW
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]  # no temp file left


def test_create_twice_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    FileKeyProvider.create(path)
    before = path.read_bytes()

    with pytest.raises(MasterKeyError, match="already exists"):
        FileKeyProvider.create(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602])
def test_load_refuses_a_file_others_can_read_or_write(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    FileKeyProvider.create(path)
    path.chmod(mode)

    with pytest.raises(MasterKeyError, match=f"chmod 600 {path}") as caught:
        FileKeyProvider(path).load()
    assert f"{mode:04o}" in str(caught.value)


def test_load_accepts_0400(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    created = FileKeyProvider.create(path)
    path.chmod(0o400)
    assert FileKeyProvider(path).load().key_ids == created.key_ids


def test_load_refuses_a_missing_file_or_a_symlink(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="does not exist"):
        FileKeyProvider(tmp_path / "absent.key").load()

    real = tmp_path / "real.key"
    FileKeyProvider.create(real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(MasterKeyError, match="cannot be opened"):
        FileKeyProvider(link).load()


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not a vaultgate key file"),
        ('{"keys": []}', "not a vaultgate key file"),
        ('{"active": "mk_1", "keys": [{"id": "mk_1"}]}', "not a vaultgate key file"),
        (f'{{"active": "mk_2", "keys": [{{"id": "mk_1", "key": "{B64_A}"}}]}}', "mk_2 is not"),
        ('{"active": "mk_1", "keys": [{"id": "mk_1", "key": "QUJD"}]}', "decodes to 3 bytes"),
        (f'{{"active": "x y", "keys": [{{"id": "x y", "key": "{B64_A}"}}]}}', "invalid id"),
    ],
)
def test_load_explains_a_malformed_file_without_echoing_keys(
    tmp_path: Path, document: str, message: str
) -> None:
    path = tmp_path / "master.key"
    _write(path, document)
    with pytest.raises(MasterKeyError, match=message) as caught:
        FileKeyProvider(path).load()
    assert B64_A not in str(caught.value)
    assert "QUJD" not in str(caught.value)


def test_add_key_appends_an_active_key_and_keeps_the_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = FileKeyProvider.create(path)

    added = FileKeyProvider.add_key(path)
    ring = FileKeyProvider(path).load()

    assert ring.key_ids == (first.active.key_id, added.key_id)
    assert ring.active == added
    assert ring.root == first.active
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]


def test_add_key_refuses_an_exposed_file_and_leaves_it_alone(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    FileKeyProvider.create(path)
    path.chmod(0o644)
    before = path.read_bytes()

    with pytest.raises(MasterKeyError, match="chmod 600"):
        FileKeyProvider.add_key(path)
    assert path.read_bytes() == before


def test_file_provider_repr_shows_the_path_only(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    ring = FileKeyProvider.create(path)
    text = repr(FileKeyProvider(path))
    assert str(path) in text
    assert base64.b64encode(ring.active.material).decode() not in text
    assert os.fspath(path) == str(FileKeyProvider(path).path)
