"""``Call.make``'s URL check: what it refuses, every time, and that a URL checked once is the
same URL when it comes again (the check keeps parsed URLs by their text)."""

from __future__ import annotations

import pytest

from vaultgate import AlterValueError
from vaultgate._calls import Call

GRANT = "0b8f3c52-4a1e-4c6b-9a57-2d7e1f0c9a31"


def make(url: str) -> Call:
    return Call.make("GET", url, grant_id=GRANT)


def test_the_same_url_checked_twice_is_the_same_url() -> None:
    first, again = make("https://api.example.com/v1/x"), make("https://api.example.com/v1/x")
    assert first.url == again.url
    assert str(again.url) == "https://api.example.com/v1/x"
    with_query = make("https://api.example.com/v1/x?page=2")
    assert with_query.url.params["page"] == "2"
    assert make("https://api.example.com/v1/x").url.query == b""


@pytest.mark.parametrize(
    "url",
    ["https://user:pw@api.example.com/", "ftp://api.example.com/", "https:///nohost", "::"],
)
def test_a_refused_url_is_refused_every_time(url: str) -> None:
    for _ in range(2):
        with pytest.raises(AlterValueError) as raised:
            make(url)
        assert raised.value.code == "invalid_url"
        assert "pw" not in str(raised.value)
