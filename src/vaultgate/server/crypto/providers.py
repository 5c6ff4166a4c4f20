"""Where master keys come from: an environment value, or a 0600 key file. A KMS can join later.

Providers return a :class:`Keyring` ordered oldest first. They never read ``os.environ``
themselves (settings pass the value in) and their errors never echo key material.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from vaultgate.server.crypto.aead import KEY_ID_PATTERN, KEY_LEN
from vaultgate.server.crypto.errors import MasterKeyError
from vaultgate.server.crypto.keyring import Keyring, MasterKey, kcv

ENV_NAME: Final = "VAULTGATE_MASTER_KEY"


class MasterKeyProvider(Protocol):
    """Anything that can produce the keyring at start (env, file, a cloud KMS...)."""

    def load(self) -> Keyring: ...


def _decode_key(text: str, where: str) -> bytes:
    # Accept the standard and the URL-safe alphabet: `openssl rand -base64 32` gives the first,
    # Python's `secrets.token_urlsafe` users tend to paste the second.
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        material = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{where} is not valid base64") from None
    if len(material) != KEY_LEN:
        raise MasterKeyError(
            f"{where} decodes to {len(material)} bytes; a master key is {KEY_LEN} bytes "
            "(make one with: openssl rand -base64 32)"
        )
    return material


class EnvKeyProvider:
    """``VAULTGATE_MASTER_KEY``: one base64 key, or ``id:base64,id:base64,...`` newest first.

    A bare key gets an id derived from its KCV (``mk_`` + 8 hex), so it is stable across
    restarts. In a list the first entry is active and the last is the root (the oldest):
    rotate by prepending a new entry, and never drop the last one. An entry may omit its
    ``id:`` and get the derived id.
    """

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "EnvKeyProvider(value='**********')"

    def load(self) -> Keyring:
        entries = [part.strip() for part in self._value.split(",")]
        if not self._value.strip():
            raise MasterKeyError(f"{ENV_NAME} is empty")
        keys = [self._parse_entry(entry, index) for index, entry in enumerate(entries, start=1)]
        # Env order is newest first; the keyring is oldest first.
        return Keyring(list(reversed(keys)), active_id=keys[0].key_id)

    @staticmethod
    def _parse_entry(entry: str, index: int) -> MasterKey:
        where = f"{ENV_NAME} entry {index}"
        if not entry:
            raise MasterKeyError(f"{where} is empty (stray comma?)")
        key_id, sep, encoded = entry.partition(":")
        if not sep:
            material = _decode_key(entry, where)
            return MasterKey(f"mk_{kcv(material)[:8]}", material)
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise MasterKeyError(
                f"{where} has an invalid key id (use 1 to 64 letters, digits, '_' or '-')"
            )
        return MasterKey(key_id, _decode_key(encoded, where))


class FileKeyProvider:
    """A JSON key file, mode 0600: ``{"active": id, "keys": [{"id", "key", "created_at"}]}``.

    Keys are listed oldest first; the first is the root. Writes are atomic (temp file, fsync,
    rename), so a crash leaves the old file or the new one, never half of either.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileKeyProvider(path={str(self.path)!r})"

    def load(self) -> Keyring:
        return _parse_key_file(_read_private(self.path), self.path)

    @classmethod
    def create(cls, path: str | os.PathLike[str], *, now: datetime | None = None) -> Keyring:
        """Make a key file with one new key. Refuses if the file exists: never replace keys."""
        target = Path(path)
        key = MasterKey.generate(created_at=now or datetime.now(UTC))
        keyring = Keyring([key], active_id=key.key_id)
        _write_private(target, _dump_key_file(keyring), replace=False)
        return keyring

    @classmethod
    def add_key(
        cls, path: str | os.PathLike[str], *, now: datetime | None = None, activate: bool = True
    ) -> MasterKey:
        """Append a new key (active unless ``activate=False``); the old keys stay, so old data
        still opens. A staged key (not active) waits for ``master-key rewrap`` to become the
        fleet's active key, so no node seals under it before every node holds it.

        Run from one process at a time (the CLI): two concurrent calls could lose one key.
        """
        target = Path(path)
        old = cls(target).load()
        key = MasterKey.generate(created_at=now or datetime.now(UTC))
        while old.get(key.key_id) is not None:  # a 32-bit id can collide, however rarely
            key = MasterKey.generate(created_at=key.created_at)
        active = key.key_id if activate else old.active.key_id
        _write_private(target, _dump_key_file(Keyring([*old.keys, key], active)), replace=True)
        return key


def _dump_key_file(keyring: Keyring) -> bytes:
    keys = [
        {
            "id": key.key_id,
            "key": base64.b64encode(key.material).decode("ascii"),
            "created_at": key.created_at.isoformat() if key.created_at else None,
        }
        for key in keyring.keys
    ]
    document = {"active": keyring.active.key_id, "keys": keys}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _parse_key_file(raw: bytes, path: Path) -> Keyring:
    try:
        document = json.loads(raw)
        active = document["active"]
        entries = document["keys"]
        if not isinstance(active, str) or not isinstance(entries, list):
            raise TypeError
        keys = [_parse_file_entry(entry, path, index) for index, entry in enumerate(entries, 1)]
    except (ValueError, KeyError, TypeError):
        raise MasterKeyError(
            f"key file {path} is not a vaultgate key file "
            '(expected {"active": id, "keys": [{"id", "key", "created_at"}]})'
        ) from None
    return Keyring(keys, active_id=active)


def _parse_file_entry(entry: Any, path: Path, index: int) -> MasterKey:
    key_id, encoded = entry["id"], entry["key"]
    if not isinstance(key_id, str) or not isinstance(encoded, str):
        raise TypeError
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise MasterKeyError(f"key file {path}: key {index} has an invalid id")
    created = entry.get("created_at")
    created_at = datetime.fromisoformat(created) if isinstance(created, str) else None
    return MasterKey(
        key_id, _decode_key(encoded, f"key file {path}: key {key_id}"), created_at=created_at
    )


def _read_private(path: Path) -> bytes:
    """Read a key file, refusing one that anyone but its owner could read or change."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise MasterKeyError(f"key file {path} does not exist (run `vaultgate init`)") from None
    except OSError as exc:
        raise MasterKeyError(f"key file {path} cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        # fstat on the open descriptor, not stat on the path, so the file checked is the one read.
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise MasterKeyError(f"key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise MasterKeyError(
                f"key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        return handle.read()


def _write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path``, mode 0600, atomically; ``replace=False`` never clobbers."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # whatever the umask, never wider
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _link_new(tmp: Path, path: Path) -> None:
    # A hard link fails if the target exists, unlike rename: create-if-absent in one step.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise MasterKeyError(
            f"key file {path} already exists; refusing to replace master keys"
        ) from None


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
