"""The data directory is 0700 and the database files 0600, from ``init`` and from ``serve``.

They hold the admin's password hash, the sealed secrets and the whole audit trail: another local
user must not be able to read them.
"""

from __future__ import annotations

import stat
from pathlib import Path

from functional.security.served import init_vault, serve_vault

DATABASE_FILES = ("vaultgate.db", "vaultgate.db-wal", "vaultgate.db-shm")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_a_private_directory_database_and_key_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_vault(data)
    assert _mode(data) == 0o700
    assert _mode(data / "vaultgate.db") == 0o600
    assert _mode(data / "master.key") == 0o600


def test_serve_keeps_the_database_and_its_wal_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve_vault(data) as vault, vault.admin() as admin:
        assert admin.post("/v1/apps", json={"name": "modes"}).status_code == 201
        # While the vault runs, SQLite's WAL and shared-memory files exist beside the database.
        for name in DATABASE_FILES:
            assert (data / name).exists(), name
            assert _mode(data / name) == 0o600, name
        assert _mode(data) == 0o700


def test_serve_narrows_a_data_directory_left_open_by_an_older_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_vault(data)
    data.chmod(0o755)
    (data / "vaultgate.db").chmod(0o644)
    with serve_vault(data):
        assert _mode(data) == 0o700
        assert _mode(data / "vaultgate.db") == 0o600
        assert _mode(data / "vaultgate.db-wal") == 0o600


def test_serve_refuses_a_key_file_others_can_read_rather_than_hide_it(tmp_path: Path) -> None:
    """The twin: an exposed key may have been read already, so it is reported, not fixed."""
    import subprocess

    from functional.security.served import VAULTGATE

    data = tmp_path / "data"
    init_vault(data)
    (data / "master.key").chmod(0o644)
    result = subprocess.run(
        [*VAULTGATE, "serve", "--data-dir", str(data), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "accessible by group or others" in result.stderr
    assert _mode(data / "master.key") == 0o644
