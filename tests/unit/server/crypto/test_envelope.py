"""The barrier: envelope sealing, context binding, rotation and derived keys."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from pathlib import Path

import pytest

from vaultgate.server.crypto import (
    API_KEY_HASH,
    AUDIT_CHAIN,
    PORTAL_SESSION,
    Barrier,
    DecryptionError,
    FileKeyProvider,
    Keyring,
    MasterKey,
    Sealed,
    aad_for,
    aead,
)

OLD = MasterKey("mk_old", bytes(range(32)))
NEW = MasterKey("mk_new", bytes(range(100, 132)))
STRANGER = MasterKey("mk_old", bytes(range(200, 232)))  # same id, different key
AAD = aad_for("app_1", "sec_1", 1)
SECRET = b'{"token": "sk-live-abcdef"}'


def barrier(*keys: MasterKey, active: str | None = None) -> Barrier:
    return Barrier(Keyring(list(keys), active_id=active or keys[-1].key_id))


def test_seal_and_open_round_trip_under_the_active_key() -> None:
    vault = barrier(OLD, NEW)
    sealed = vault.seal_secret(SECRET, aad=AAD)

    assert sealed.master_key_id == "mk_new"
    assert aead.key_id_of(sealed.wrapped_key) == "mk_new"
    assert SECRET not in sealed.ciphertext
    assert vault.open_secret(sealed, aad=AAD) == SECRET


def test_every_seal_uses_a_fresh_data_key() -> None:
    vault = barrier(OLD)
    first, second = vault.seal_secret(SECRET, aad=AAD), vault.seal_secret(SECRET, aad=AAD)
    assert first.wrapped_key != second.wrapped_key
    assert first.ciphertext[8:] != second.ciphertext[8:]
    # Mixing one version's payload with another's data key does not open.
    with pytest.raises(DecryptionError):
        vault.open_secret(Sealed(first.ciphertext, second.wrapped_key, "mk_old"), aad=AAD)


@pytest.mark.parametrize(
    "other",
    [
        aad_for("app_2", "sec_1", 1),
        aad_for("app_1", "sec_2", 1),
        aad_for("app_1", "sec_1", 2),
    ],
    ids=["other app", "other secret", "other version"],
)
def test_a_row_copied_to_another_context_does_not_open(other: bytes) -> None:
    vault = barrier(OLD)
    sealed = vault.seal_secret(SECRET, aad=AAD)
    assert vault.open_secret(sealed, aad=AAD) == SECRET

    with pytest.raises(DecryptionError, match=r"^could not open sealed data$"):
        vault.open_secret(sealed, aad=other)
    # Nor a payload or a wrapped key moved on its own next to the other row's half.
    elsewhere = vault.seal_secret(b"other", aad=other)
    for mixed in (
        Sealed(sealed.ciphertext, elsewhere.wrapped_key, "mk_old"),
        Sealed(elsewhere.ciphertext, sealed.wrapped_key, "mk_old"),
    ):
        with pytest.raises(DecryptionError):
            vault.open_secret(mixed, aad=other)


def test_payload_and_wrapped_key_cannot_swap_roles() -> None:
    vault = barrier(OLD)
    sealed = vault.seal_secret(SECRET, aad=AAD)
    with pytest.raises(DecryptionError):
        vault.open_secret(Sealed(sealed.wrapped_key, sealed.ciphertext, "mk_old"), aad=AAD)


def test_wrong_or_missing_master_key_raises_the_same_error() -> None:
    sealed = barrier(OLD).seal_secret(SECRET, aad=AAD)
    messages = set()
    for other in (barrier(STRANGER), barrier(NEW)):
        with pytest.raises(DecryptionError) as caught:
            other.open_secret(sealed, aad=AAD)
        messages.add(str(caught.value))
    assert messages == {"could not open sealed data"}


def test_tampered_wrapped_key_or_ciphertext_does_not_open() -> None:
    vault = barrier(OLD)
    sealed = vault.seal_secret(SECRET, aad=AAD)
    flip = bytes([sealed.ciphertext[-1] ^ 1])
    bad_payload = Sealed(sealed.ciphertext[:-1] + flip, sealed.wrapped_key, "mk_old")
    bad_wrap = Sealed(sealed.ciphertext, sealed.wrapped_key[:-1], "mk_old")
    for broken in (bad_payload, bad_wrap):
        with pytest.raises(DecryptionError):
            vault.open_secret(broken, aad=AAD)


def test_rewrap_moves_to_the_active_key_and_is_idempotent() -> None:
    sealed = barrier(OLD).seal_secret(SECRET, aad=AAD)
    rotated = barrier(OLD, NEW)

    wrapped, key_id = rotated.rewrap(sealed.wrapped_key, aad=AAD)
    assert key_id == "mk_new"
    assert aead.key_id_of(wrapped) == "mk_new"
    moved = Sealed(sealed.ciphertext, wrapped, key_id)
    assert barrier(NEW).open_secret(moved, aad=AAD) == SECRET  # the old key is no longer needed

    again, again_id = rotated.rewrap(wrapped, aad=AAD)
    assert (again, again_id) == (wrapped, "mk_new")


def test_rewrap_refuses_a_key_it_cannot_open() -> None:
    sealed = barrier(OLD).seal_secret(SECRET, aad=AAD)
    with pytest.raises(DecryptionError):
        barrier(OLD, NEW).rewrap(sealed.wrapped_key, aad=aad_for("app_2", "sec_1", 1))
    with pytest.raises(DecryptionError):
        barrier(NEW).rewrap(sealed.wrapped_key, aad=AAD)
    # Idempotence does not skip the check: a foreign blob naming the active key is refused.
    foreign = barrier(STRANGER).seal_secret(SECRET, aad=AAD)
    with pytest.raises(DecryptionError):
        barrier(OLD).rewrap(foreign.wrapped_key, aad=AAD)


def test_file_rotation_keeps_old_blobs_open_and_rewrap_moves_them(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = FileKeyProvider.create(path)
    sealed = Barrier(first).seal_secret(SECRET, aad=AAD)

    added = FileKeyProvider.add_key(path)
    rotated = Barrier(FileKeyProvider(path).load())

    assert rotated.open_secret(sealed, aad=AAD) == SECRET
    assert rotated.seal_secret(SECRET, aad=AAD).master_key_id == added.key_id
    wrapped, key_id = rotated.rewrap(sealed.wrapped_key, aad=AAD)
    assert (key_id, aead.key_id_of(wrapped)) == (added.key_id, added.key_id)
    assert rotated.open_secret(Sealed(sealed.ciphertext, wrapped, key_id), aad=AAD) == SECRET


def test_aad_for_is_unambiguous_and_validated() -> None:
    assert aad_for("ab", "c", 1) != aad_for("a", "bc", 1)
    assert aad_for("a", "b", 1) != aad_for("a", "b", 256)
    assert aad_for("a", "b", 1) == Barrier.aad_for("a", "b", 1)
    assert aad_for("app", "sec", 7) == (
        b"vaultgate/secret-version/v1\x00"
        b"\x00\x00\x00\x03app"
        b"\x00\x00\x00\x03sec"
        b"\x00\x00\x00\x00\x00\x00\x00\x07"
    )
    with pytest.raises(ValueError, match="negative"):
        aad_for("a", "b", -1)


def test_derived_keys_are_distinct_stable_and_survive_rotation() -> None:
    before = barrier(OLD)
    after = barrier(OLD, NEW)
    labels = (API_KEY_HASH, AUDIT_CHAIN, PORTAL_SESSION)

    keys = [before.derive_key(label) for label in labels]
    assert len(set(keys)) == 3
    assert all(len(key) == 32 for key in keys)
    assert [after.derive_key(label) for label in labels] == keys
    assert OLD.material not in keys
    # A different root gives different keys.
    assert barrier(NEW).derive_key(AUDIT_CHAIN) != before.derive_key(AUDIT_CHAIN)


def test_derive_key_known_answer() -> None:
    # HKDF-SHA256(ikm=root, salt=b"vaultgate/derive/v1", info=b"vaultgate/audit-chain"), 32 bytes.
    # Pinned: changing it would break every stored API key hash and audit HMAC.
    prk = hmac.new(b"vaultgate/derive/v1", OLD.material, hashlib.sha256).digest()
    okm = hmac.new(prk, b"vaultgate/audit-chain\x01", hashlib.sha256).digest()
    assert barrier(OLD).derive_key(AUDIT_CHAIN) == okm


def test_derive_key_rejects_malformed_labels() -> None:
    for label in ("", "Upper", "with space", "x" * 65):
        with pytest.raises(ValueError, match="label"):
            barrier(OLD).derive_key(label)


def test_mac_and_verify_mac() -> None:
    vault = barrier(OLD)
    tag = vault.mac(API_KEY_HASH, b"alter_key_abc")
    assert tag == hmac.new(vault.derive_key(API_KEY_HASH), b"alter_key_abc", "sha256").digest()
    assert vault.verify_mac(API_KEY_HASH, b"alter_key_abc", tag)
    assert not vault.verify_mac(API_KEY_HASH, b"alter_key_abd", tag)
    assert not vault.verify_mac(AUDIT_CHAIN, b"alter_key_abc", tag)


def test_reprs_never_show_material_or_plaintext() -> None:
    vault = barrier(OLD, NEW)
    sealed = vault.seal_secret(SECRET, aad=AAD)
    texts = [repr(vault), str(vault), repr(sealed), str(sealed)]
    for text in texts:
        assert OLD.material.hex() not in text
        assert NEW.material.hex() not in text
        assert "sk-live" not in text
        assert repr(sealed.ciphertext) not in text
    assert repr(sealed).startswith("Sealed(master_key_id='mk_new', ciphertext=<")
    with pytest.raises(TypeError):
        pickle.dumps(vault)
