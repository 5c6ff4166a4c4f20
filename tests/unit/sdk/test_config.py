"""Construction: key grammar, caller, base-URL precedence through an injected environment."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultgate import AlterValueError, AlterVault, SyncVault, is_valid_key

LEGACY = "alter_key_" + "aB3-_" * 8
B32 = "abcdefghijklmnopqrstuvwxyz234567"


def scoped(key_type: str = "rk", random_part: str = "abcdefghijklmnopqrstuv") -> str:
    crc = zlib.crc32(f"{key_type}:{random_part}".encode())
    checksum = "".join(B32[(crc >> (5 * i)) & 0x1F] for i in range(6))
    return f"alter_{key_type}_{random_part}_{checksum}"


@pytest.mark.parametrize("key", [LEGACY, scoped(), scoped("ak"), scoped("dk", "a" * 22)])
def test_valid_keys_are_accepted(key: str) -> None:
    assert is_valid_key(key)
    AlterVault(key, env={})


@pytest.mark.parametrize(
    "key",
    [
        "",
        "alter_key_" + "a" * 39,
        "alter_key_" + "a" * 41,
        "alter_key_" + "a" * 39 + "!",
        "vg_admin_" + "a" * 40,
        scoped()[:-1] + ("a" if scoped()[-1] != "a" else "b"),  # checksum typo
        scoped().replace("_rk_", "_xk_"),
        scoped("rk", "ABCDEFGHIJKLMNOPQRSTUV"),
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(key: str) -> None:
    assert not is_valid_key(key)
    with pytest.raises(AlterValueError) as info:
        AlterVault(key, env={})
    assert isinstance(info.value, ValueError)
    if key:
        assert key not in str(info.value)
        assert key not in repr(info.value)


def test_non_string_key_is_not_valid() -> None:
    assert not is_valid_key(None)
    assert not is_valid_key(b"alter_key_" + b"a" * 40)


def test_base_url_argument_wins_over_the_environment() -> None:
    env = {"VAULTGATE_URL": "https://a.example", "ALTER_BASE_URL": "https://b.example"}
    assert AlterVault(LEGACY, base_url="https://c.example/", env=env).base_url == (
        "https://c.example"
    )


def test_vaultgate_url_wins_over_alter_base_url() -> None:
    env = {"VAULTGATE_URL": "https://a.example", "ALTER_BASE_URL": "https://b.example"}
    assert AlterVault(LEGACY, env=env).base_url == "https://a.example"


def test_alter_base_url_is_used_when_vaultgate_url_is_absent_or_empty() -> None:
    env = {"VAULTGATE_URL": "", "ALTER_BASE_URL": "https://b.example/prefix/"}
    assert AlterVault(LEGACY, env=env).base_url == "https://b.example/prefix"


def test_local_default_when_nothing_is_set() -> None:
    assert AlterVault(LEGACY, env={}).base_url == "http://127.0.0.1:8200"
    assert SyncVault(LEGACY, env={}).base_url == "http://127.0.0.1:8200"


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8200", "http://127.0.0.1:9", "http://[::1]:8200", "https://vault.internal"],
)
def test_base_url_accepts_https_and_loopback_http(url: str) -> None:
    assert AlterVault(LEGACY, base_url=url, env={}).base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://vault.example.com",  # the key would cross the network in clear
        "ftp://vault.example.com",
        "https://user:pw@vault.example.com",
        "https://vault.example.com/?x=1",
        "https://vault.example.com/#frag",
        "not a url",
    ],
)
def test_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(AlterValueError):
        AlterVault(LEGACY, base_url=url, env={})


def test_bad_base_url_from_the_environment_is_refused() -> None:
    with pytest.raises(AlterValueError):
        AlterVault(LEGACY, env={"VAULTGATE_URL": "http://vault.example.com"})


@pytest.mark.parametrize("caller", ["", "x" * 256, "bad\ncaller", "caf\u00e9"])
def test_bad_callers_are_refused(caller: str) -> None:
    with pytest.raises(AlterValueError):
        AlterVault(LEGACY, caller=caller, env={})


def test_repr_shows_base_url_and_a_redacted_key() -> None:
    vault = AlterVault(LEGACY, base_url="https://vault.internal", env={})
    text = repr(vault)
    assert "https://vault.internal" in text
    assert "alter_key_**********" in text
    assert LEGACY not in text
    assert LEGACY[10:] not in text
    assert LEGACY not in repr(SyncVault(LEGACY, env={}))


KEY_TAILS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567ABC-_!", min_size=0, max_size=44)


@settings(deadline=None)
@given(
    prefix=st.sampled_from(["alter_key_", "alter_rk_", "alter_ak_", "alter_dk_", "alter_xk_", ""]),
    tail=KEY_TAILS,
)
def test_key_grammar_agrees_with_the_official_client(prefix: str, tail: str) -> None:
    from alter_sdk._key_format import is_valid_key as official

    assert is_valid_key(prefix + tail) == official(prefix + tail)


@settings(deadline=None)
@given(
    key_type=st.sampled_from(["rk", "ak", "dk", "pk"]),
    random_part=st.text(B32, min_size=22, max_size=22),
)
def test_every_well_formed_scoped_key_is_accepted_by_both(key_type: str, random_part: str) -> None:
    from alter_sdk._key_format import is_valid_key as official

    key = scoped(key_type, random_part)
    assert is_valid_key(key)
    assert official(key)
