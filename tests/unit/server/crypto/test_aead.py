"""AES-256-GCM blobs: known answers, round trips, and one opaque error for every failure."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultgate.server.crypto import DecryptionError, aead

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NONCE = bytes(range(12))

# McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16 (AES-256, with AAD).
GCM_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
GCM_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_PT = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
GCM_CT = bytes.fromhex(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
)


def lookup(*keys: tuple[str, bytes]) -> aead.KeyLookup:
    table = dict(keys)
    return table.get


def test_known_answer_blob_layout_and_bytes() -> None:
    blob = aead._seal_with_nonce(
        KEY, b"hello vault", aad=b"context", key_id="mk_00000001", nonce=NONCE
    )

    assert (
        blob.hex()
        == (
            "766731"  # b"vg1"
            "0b" + b"mk_00000001".hex() + NONCE.hex() + "2f67ba77aac5b47af82de3f6ca07fb666c9bae"
            "64d02c6b92f40b8b"
        )
    )
    assert aead.open(lookup(("mk_00000001", KEY)), blob, aad=b"context") == b"hello vault"


def test_known_answer_uses_aes256_gcm_with_header_bound_into_aad() -> None:
    blob = aead._seal_with_nonce(GCM_KEY, GCM_PT, aad=GCM_AAD, key_id="k", nonce=GCM_IV)

    header = b"vg1\x01k"
    # The counter-mode body matches the published vector; the tag covers header + AAD.
    expected_tag = AESGCM(GCM_KEY).encrypt(GCM_IV, GCM_PT, header + GCM_AAD)[-16:]
    assert blob == header + GCM_IV + GCM_CT + expected_tag
    assert expected_tag.hex() == "4c890b275dcd3ca34cabb03d34321d08"


def test_round_trip_and_fresh_nonce_each_time() -> None:
    first = aead.seal(KEY, b"secret", aad=b"a", key_id="mk_1")
    second = aead.seal(KEY, b"secret", aad=b"a", key_id="mk_1")

    assert first != second
    assert first[8:20] != second[8:20]  # the nonces differ
    keys = lookup(("mk_1", KEY))
    assert aead.open(keys, first, aad=b"a") == aead.open(keys, second, aad=b"a") == b"secret"


def test_empty_plaintext_round_trips() -> None:
    blob = aead.seal(KEY, b"", aad=b"", key_id="mk_1")
    assert aead.open(lookup(("mk_1", KEY)), blob, aad=b"") == b""


def test_key_id_of_reads_the_header() -> None:
    assert aead.key_id_of(aead.seal(KEY, b"x", aad=b"", key_id="mk_abc")) == "mk_abc"
    with pytest.raises(DecryptionError):
        aead.key_id_of(b"nope")


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1 :]


BLOB = aead._seal_with_nonce(KEY, b"payload!", aad=b"ctx", key_id="mk_1", nonce=NONCE)
HEADER = len(b"vg1") + 1 + len("mk_1")
TAMPERED = {
    "magic": _flip(BLOB, 0),
    "id length": _flip(BLOB, 3),
    "nonce": _flip(BLOB, HEADER),
    "ciphertext": _flip(BLOB, HEADER + 12),
    "tag": _flip(BLOB, len(BLOB) - 1),
    "truncated tag": BLOB[:-1],
    "truncated to header": BLOB[:HEADER],
    "empty": b"",
    "appended byte": BLOB + b"\x00",
}


@pytest.mark.parametrize("blob", TAMPERED.values(), ids=TAMPERED.keys())
def test_tampered_blob_raises_opaque_error(blob: bytes) -> None:
    keys = lookup(("mk_1", KEY))
    assert aead.open(keys, BLOB, aad=b"ctx") == b"payload!"  # the untampered one opens
    with pytest.raises(DecryptionError) as caught:
        aead.open(keys, blob, aad=b"ctx")
    assert str(caught.value) == "could not open sealed data"


def test_wrong_aad_wrong_key_and_unknown_key_raise_the_same_error() -> None:
    messages = set()
    cases = [
        (lookup(("mk_1", KEY)), b"other ctx"),
        (lookup(("mk_1", OTHER_KEY)), b"ctx"),
        (lookup(("mk_2", KEY)), b"ctx"),
        (lookup(("mk_1", KEY[:16])), b"ctx"),
    ]
    for keys, aad in cases:
        with pytest.raises(DecryptionError) as caught:
            aead.open(keys, BLOB, aad=aad)
        messages.add(str(caught.value))
    assert messages == {"could not open sealed data"}


def test_swapped_key_id_fails_even_when_the_named_key_is_the_same_key() -> None:
    # Rewrite the header to name mk_2, which maps to the very same key: the tag still breaks,
    # because the key id is bound into the AAD.
    swapped = b"vg1\x04mk_2" + BLOB[HEADER:]
    keys = lookup(("mk_1", KEY), ("mk_2", KEY))
    with pytest.raises(DecryptionError):
        aead.open(keys, swapped, aad=b"ctx")


def test_seal_rejects_bad_key_nonce_or_key_id() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        aead.seal(KEY[:16], b"x", aad=b"", key_id="mk_1")
    with pytest.raises(ValueError, match="12 bytes"):
        aead._seal_with_nonce(KEY, b"x", aad=b"", key_id="mk_1", nonce=b"short")
    for bad_id in ("", "has space", "x" * 65, "é"):
        with pytest.raises(ValueError, match="key id"):
            aead.seal(KEY, b"x", aad=b"", key_id=bad_id)


def test_error_carries_no_cause_or_context() -> None:
    with pytest.raises(DecryptionError) as caught:
        aead.open(lookup(("mk_1", OTHER_KEY)), BLOB, aad=b"ctx")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert caught.value.args == ("could not open sealed data",)
