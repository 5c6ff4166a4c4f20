"""Master keys and keyrings: redaction, validation, key check values and the start-up check."""

from __future__ import annotations

import pickle
import re

import pytest

from vaultgate.server.crypto import Keyring, MasterKey, MasterKeyError, check_keyring, kcv

MATERIAL_A = bytes(range(32))
MATERIAL_B = bytes(range(100, 132))


def test_master_key_repr_and_str_never_show_material() -> None:
    key = MasterKey("mk_0000000a", MATERIAL_A)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert "mk_0000000a" in text
        assert MATERIAL_A.hex() not in text
        assert repr(MATERIAL_A) not in text
        assert "**********" in text


def test_master_key_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(MasterKey("mk_1", MATERIAL_A))


def test_master_key_validates_length_and_id() -> None:
    with pytest.raises(ValueError, match="32 bytes") as caught:
        MasterKey("mk_1", MATERIAL_A[:31])
    assert MATERIAL_A[:31].hex() not in str(caught.value)
    with pytest.raises(ValueError, match="key id"):
        MasterKey("not valid!", MATERIAL_A)


def test_generated_keys_have_random_mk_ids_and_material() -> None:
    first, second = MasterKey.generate(), MasterKey.generate()
    assert re.fullmatch(r"mk_[0-9a-f]{8}", first.key_id)
    assert first.key_id != second.key_id
    assert first.material != second.material
    assert len(first.material) == 32


def test_master_key_equality_needs_same_id_and_material() -> None:
    assert MasterKey("mk_1", MATERIAL_A) == MasterKey("mk_1", MATERIAL_A)
    assert MasterKey("mk_1", MATERIAL_A) != MasterKey("mk_1", MATERIAL_B)
    assert MasterKey("mk_1", MATERIAL_A) != MasterKey("mk_2", MATERIAL_A)


def test_kcv_is_16_hex_stable_and_key_specific() -> None:
    value = kcv(MasterKey("mk_1", MATERIAL_A))
    assert re.fullmatch(r"[0-9a-f]{16}", value)
    assert value == kcv(MATERIAL_A)
    assert value != kcv(MATERIAL_B)
    # HMAC-SHA256(key, b"vaultgate key check value v1"), first 16 hex characters.
    assert value == "0322a2a7ffc26f1d"  # pinned: stored KCVs must stay valid


def test_keyring_active_root_and_lookup() -> None:
    old, new = MasterKey("mk_old", MATERIAL_A), MasterKey("mk_new", MATERIAL_B)
    ring = Keyring([old, new], active_id="mk_new")

    assert ring.active is new
    assert ring.root is old
    assert ring.key_ids == ("mk_old", "mk_new")
    assert ring.lookup("mk_old") == MATERIAL_A
    assert ring.lookup("mk_missing") is None
    assert ring.get("mk_missing") is None
    assert ring.kcvs() == {"mk_old": kcv(MATERIAL_A), "mk_new": kcv(MATERIAL_B)}


def test_keyring_repr_never_shows_material() -> None:
    ring = Keyring([MasterKey("mk_1", MATERIAL_A)], active_id="mk_1")
    assert repr(ring) == "Keyring(key_ids=['mk_1'], active_id='mk_1')"
    with pytest.raises(TypeError):
        pickle.dumps(ring)


def test_keyring_refuses_empty_duplicate_or_unknown_active() -> None:
    with pytest.raises(MasterKeyError, match="no master key"):
        Keyring([], active_id="mk_1")
    with pytest.raises(MasterKeyError, match="mk_1 appears twice"):
        Keyring([MasterKey("mk_1", MATERIAL_A), MasterKey("mk_1", MATERIAL_B)], "mk_1")
    with pytest.raises(MasterKeyError, match="active master key mk_2"):
        Keyring([MasterKey("mk_1", MATERIAL_A)], active_id="mk_2")


def _ring(*keys: MasterKey) -> Keyring:
    return Keyring(list(keys), active_id=keys[-1].key_id)


def test_check_keyring_accepts_matching_and_new_keys() -> None:
    old, new = MasterKey("mk_old", MATERIAL_A), MasterKey("mk_new", MATERIAL_B)
    check_keyring(_ring(old), {"mk_old": kcv(old)})
    check_keyring(_ring(old, new), {"mk_old": kcv(old)}, root_id="mk_old")
    check_keyring(_ring(old), {})


def test_check_keyring_refuses_a_missing_key_naming_it() -> None:
    ring = _ring(MasterKey("mk_new", MATERIAL_B))
    with pytest.raises(MasterKeyError, match="master key mk_old is missing") as caught:
        check_keyring(ring, {"mk_old": kcv(MATERIAL_A)})
    assert MATERIAL_A.hex() not in str(caught.value)
    assert MATERIAL_B.hex() not in str(caught.value)


def test_check_keyring_refuses_a_wrong_key_under_the_same_id() -> None:
    ring = _ring(MasterKey("mk_1", MATERIAL_B))
    with pytest.raises(MasterKeyError, match="master key mk_1 is not the key") as caught:
        check_keyring(ring, {"mk_1": kcv(MATERIAL_A)})
    assert MATERIAL_B.hex() not in str(caught.value)
    assert kcv(MATERIAL_B) not in str(caught.value)


def test_check_keyring_refuses_a_changed_root() -> None:
    old, new = MasterKey("mk_old", MATERIAL_A), MasterKey("mk_new", MATERIAL_B)
    stored = {"mk_old": kcv(old), "mk_new": kcv(new)}
    with pytest.raises(MasterKeyError, match="root master key must be mk_old"):
        check_keyring(Keyring([new, old], active_id="mk_new"), stored, root_id="mk_old")
