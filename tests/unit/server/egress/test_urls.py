from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultgate.server.egress import (
    HostPattern,
    Target,
    host_allowed,
    normalize_path,
    parse_allowed_host,
    parse_target,
)
from vaultgate.server.errors import InvalidInput

# --- parse_target: accepted forms and their normal form ---------------------------------------

GOOD = [
    # url, scheme, host, port, path, query
    ("https://api.openai.com/v1/chat", "https", "api.openai.com", 443, "/v1/chat", ""),
    ("HTTPS://API.OpenAI.COM./v1", "https", "api.openai.com", 443, "/v1", ""),
    ("http://example.com:8080/a?b=1&c=2#frag", "http", "example.com", 8080, "/a", "b=1&c=2"),
    ("https://example.com", "https", "example.com", 443, "/", ""),
    ("https://example.com?x=1", "https", "example.com", 443, "/", "x=1"),
    ("https://example.com:443/", "https", "example.com", 443, "/", ""),
    ("http://[::1]:8080/", "http", "::1", 8080, "/", ""),
    ("http://[2001:DB8::1]/", "http", "2001:db8::1", 80, "/", ""),
    ("http://[::ffff:127.0.0.1]/", "http", "::ffff:7f00:1", 80, "/", ""),
    ("https://bücher.de/", "https", "xn--bcher-kva.de", 443, "/", ""),
    ("https://xn--bcher-kva.de/", "https", "xn--bcher-kva.de", 443, "/", ""),
    ("https://_dmarc.example.com/", "https", "_dmarc.example.com", 443, "/", ""),
    ("https://example.com/é?q=ü", "https", "example.com", 443, "/%C3%A9", "q=%C3%BC"),
    ("https://example.com/a<b>", "https", "example.com", 443, "/a%3Cb%3E", ""),
    # The raw path is kept as sent; normalisation is a separate, explicit step.
    ("https://example.com/a/../b", "https", "example.com", 443, "/a/../b", ""),
]

# Every legacy IPv4 spelling is read the way browsers read it, so the address guard sees it.
IP_SPELLINGS = [
    ("http://2130706433/", "127.0.0.1"),
    ("http://0x7f.1/", "127.0.0.1"),
    ("http://0177.0.0.1/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://0x7F000001/", "127.0.0.1"),
    ("http://127.0.0.1./", "127.0.0.1"),
    ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
    ("http://0/", "0.0.0.0"),
    ("http://10.0.0.1/", "10.0.0.1"),
]

BAD = [
    "ftp://example.com/",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "//example.com/",
    "example.com/path",
    "/relative",
    "",
    "https:///path",
    "https://",
    "https://:443/",
    "https:example.com",
    # userinfo: the host a reader sees is not the one connected to
    "https://api.openai.com@evil.com/",
    "https://user:pass@example.com/",
    "https://@example.com/",
    # backslashes before the path: parsers disagree on them
    "https://evil.com\\@api.openai.com/",
    "https:\\\\evil.com/",
    "https:/\\evil.com/",
    "https://evil.com\\/",
    # percent in the host
    "https://exa%6dple.com/",
    "https://[::1%25eth0]/",
    # control characters and spaces anywhere
    "https://ex ample.com/",
    "https://example.com/a b",
    "https://example.com/?q=a b",
    "https://example.com/\t",
    "https://example.com/\x00",
    "https://example.com\r\n/",
    "https://example.com/\x7f",
    "https://example.com/\u202e",
    "https://exa\u200bmple.com/",
    "https://example.com/\u00a0",
    "https://example.com/\ud800",
    " https://example.com/",
    # ports
    "https://example.com:0/",
    "https://example.com:65536/",
    "https://example.com:-1/",
    "https://example.com:8o/",
    "https://example.com:/",
    "https://example.com:80:80/",
    "https://example.com:００/",
    # look-alikes and invalid IDNA
    "https://ｅxample.com/",
    "https://example。com/",
    "https://\u212aey.com/",
    "https://BÜCHER.de/",
    "https://xn--a.com/",
    "https://xn--zz-0000000000.com/",
    # numeric hosts that are not addresses
    "http://1.2.3.4.5/",
    "http://256.0.0.1/",
    "http://4294967296/",
    "http://0x100000000/",
    "http://1.2.3.09/",
    "http://foo.123/",
    "http://foo.0x10/",
    # malformed hosts
    "http://[::1/",
    "http://[::1]x/",
    "http://[zz]/",
    "http://[127.0.0.1]/",
    "https://exa_mple..com/",
    "https://a.com../",
    "https://ex<ample.com/",
    "https://exa*mple.com/",
    "https://ex!ample.com/",
    "https://" + "a" * 64 + ".com/",
    "https://" + ".".join(["a" * 60] * 5) + "/",
    # length
    "https://example.com/" + "a" * 9000,
    "https://example.com/" + "é" * 3000,
]


@pytest.mark.parametrize(("url", "scheme", "host", "port", "path", "query"), GOOD)
def test_good_urls_parse_to_their_normal_form(
    url: str, scheme: str, host: str, port: int, path: str, query: str
) -> None:
    assert parse_target(url) == Target(scheme, host, port, path, query)


@pytest.mark.parametrize(("url", "host"), IP_SPELLINGS)
def test_every_ipv4_spelling_is_recognised_as_an_address(url: str, host: str) -> None:
    target = parse_target(url)
    assert target.host == host
    assert target.is_ip


def test_a_domain_is_not_an_ip() -> None:
    assert not parse_target("https://api.openai.com/").is_ip
    assert not parse_target("https://1e3.example/").is_ip


@pytest.mark.parametrize("url", BAD)
def test_bad_urls_are_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_target(url)
    assert type(caught.value) is InvalidInput
    assert caught.value.status == 400
    assert caught.value.code == "invalid_url"
    assert caught.value.field == "url"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://api.openai.com@evil.com/", "user name"),
        ("https://evil.com\\@api.openai.com/", "backslash"),
        ("https://exa%6dple.com/", "'%'"),
        ("https://example.com/a\tb", "control character"),
        ("http://1.2.3.4.5/", "IP address"),
        ("https://ｅxample.com/", "internationalised"),
    ],
)
def test_the_message_names_the_fault(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_target(url)


def test_a_cyrillic_look_alike_never_matches_the_ascii_host() -> None:
    target = parse_target("https://\u0430pi.openai.com/")  # Cyrillic a
    assert target.host.startswith("xn--")
    assert not host_allowed(target, [parse_allowed_host("api.openai.com")])
    assert host_allowed(
        parse_target("https://api.openai.com/"), [parse_allowed_host("api.openai.com")]
    )


def test_origin_and_url_omit_default_ports_and_bracket_ipv6() -> None:
    assert parse_target("https://example.com:443/a?b=c").url == "https://example.com/a?b=c"
    assert parse_target("http://example.com:80/").origin == "http://example.com"
    assert parse_target("http://example.com:443/").origin == "http://example.com:443"
    assert parse_target("https://[::1]:8443/x").origin == "https://[::1]:8443"
    assert parse_target("https://[::1]/x").netloc == "[::1]"


def test_the_fragment_is_not_forwarded() -> None:
    assert parse_target("https://example.com/a#secret").url == "https://example.com/a"


def test_repr_hides_the_query_which_may_carry_a_credential() -> None:
    target = parse_target("https://example.com/a?api_key=sk-very-secret")
    assert "sk-very-secret" not in repr(target)
    assert "sk-very-secret" in target.url


def test_normalized_applies_normalize_path_to_the_same_target() -> None:
    target = parse_target("https://example.com/v1/./a//../b?x=1")
    assert target.normalized() == Target("https", "example.com", 443, "/v1/b", "x=1")


@given(st.text())
def test_arbitrary_text_is_a_target_or_invalid_input(text: str) -> None:
    _parse_or_invalid(text)


@given(st.sampled_from(["http://", "https://", "HTTP://", "https://[", "http://0x"]), st.text())
def test_arbitrary_url_tails_are_a_target_or_invalid_input(prefix: str, tail: str) -> None:
    target = _parse_or_invalid(prefix + tail)
    if target is not None:
        # The normal form is a fixed point: parsing what we send gives the same target.
        assert parse_target(target.url) == target


def _parse_or_invalid(text: str) -> Target | None:
    try:
        return parse_target(text)
    except InvalidInput as exc:
        # Only the URL error is allowed out, never a subclass or a stray ValueError.
        if type(exc) is not InvalidInput or exc.code != "invalid_url":
            raise
        return None


# --- normalize_path ---------------------------------------------------------------------------

NORMAL_PATHS = [
    ("/", "/"),
    ("/a/b", "/a/b"),
    ("/a//b", "/a/b"),
    ("//a", "/a"),
    ("/a/./b", "/a/b"),
    ("/a/b/../c", "/a/c"),
    ("/a/..", "/"),
    ("/a/b/..", "/a/"),
    ("/a/.", "/a/"),
    ("/a/", "/a/"),
    ("/a/%2e%2E/b", "/b"),
    ("/a/%2e/b", "/a/b"),
    ("/%7euser", "/~user"),
    ("/%41%62c", "/Abc"),
    ("/a%3ab", "/a%3Ab"),
    ("/a%20b", "/a%20b"),
    ("/v1/chat/completions", "/v1/chat/completions"),
]

BAD_PATHS = [
    "/a%2fb",
    "/a%2Fb",
    "/a%5cb",
    "/a\\b",
    "/a\x00",
    "/a%00",
    "/..",
    "/%2e%2e/etc/passwd",
    "/a/../..",
    "/%",
    "/%zz",
    "/%4",
    "relative",
    "",
]


@pytest.mark.parametrize(("raw", "normal"), NORMAL_PATHS)
def test_normalize_path(raw: str, normal: str) -> None:
    assert normalize_path(raw) == normal


@pytest.mark.parametrize("raw", BAD_PATHS)
def test_bad_paths_are_invalid_input(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_path(raw)
    assert caught.value.code == "invalid_path"


@given(st.text(alphabet="/.%2eEfF5cC0a", max_size=30).map(lambda s: "/" + s))
def test_normal_paths_are_stable_and_never_climb(raw: str) -> None:
    try:
        normal = normalize_path(raw)
    except InvalidInput:
        return
    assert normalize_path(normal) == normal
    assert "/../" not in normal + "/"
    assert "//" not in normal


# --- allowed hosts ----------------------------------------------------------------------------


def _allowed(entry: str, url: str) -> bool:
    return parse_allowed_host(entry).matches(parse_target(url))


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        ("api.openai.com", "https://api.openai.com/v1"),
        ("API.OpenAI.com.", "https://api.openai.com./v1"),
        ("api.example.com:8443", "https://api.example.com:8443/"),
        ("https://api.example.com", "https://api.example.com:443/"),
        ("http://localhost:8080", "http://localhost:8080/x"),
        ("http://127.0.0.1:8080/", "http://2130706433:8080/"),
        ("*.example.com", "https://eu.example.com/"),
        ("https://*.example.com:8443", "https://eu.example.com:8443/"),
        ("bücher.de", "https://xn--bcher-kva.de/"),
        ("[::1]:8443", "https://[::1]:8443/"),
    ],
)
def test_entries_match(entry: str, url: str) -> None:
    assert _allowed(entry, url)


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        ("api.openai.com", "http://api.openai.com/"),  # http only where the entry says so
        ("api.openai.com:80", "http://api.openai.com/"),
        ("api.openai.com", "https://api.openai.com:8443/"),
        ("api.openai.com", "https://xapi.openai.com/"),
        ("api.openai.com", "https://api.openai.com.evil.com/"),
        ("http://localhost:8080", "https://localhost:8080/"),
        ("http://localhost", "http://localhost:8080/"),
        ("*.example.com", "https://example.com/"),  # not the bare domain
        ("*.example.com", "https://a.b.example.com/"),  # not two labels
        ("*.example.com", "https://evil-example.com/"),
        ("*.example.com", "https://aexample.com/"),
        ("*.example.com", "http://eu.example.com/"),
        ("*.example.com", "https://eu.example.com:8443/"),
    ],
)
def test_entries_do_not_match(entry: str, url: str) -> None:
    assert not _allowed(entry, url)


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "   ",
        "https://",
        "ftp://example.com",
        "*",
        "*.",
        "*.com",
        "a.*.com",
        "*example.com",
        "**.example.com",
        "*.1.2.3.4",
        "example.com/path",
        "https://example.com/path",
        "user@example.com",
        "example.com:99999",
        "example.com:",
        "exa mple.com",
        "evil.com\\@api.openai.com",
        "ｅxample.com",
    ],
)
def test_bad_entries_raise_value_error(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed host"):
        parse_allowed_host(entry)


@pytest.mark.parametrize(
    ("entry", "origin"),
    [
        ("api.openai.com", "https://api.openai.com"),
        ("example.com:443", "https://example.com"),
        ("example.com:8443", "https://example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("HTTP://Example.COM:80/", "http://example.com"),
        ("[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_origin_for_default(entry: str, origin: str) -> None:
    pattern = parse_allowed_host(entry)
    assert pattern.origin_for_default() == origin
    assert str(pattern) == origin


def test_a_wildcard_cannot_be_a_default_origin() -> None:
    pattern = parse_allowed_host("*.example.com")
    assert pattern == HostPattern("https", "example.com", 443, wildcard=True)
    assert str(pattern) == "https://*.example.com"
    with pytest.raises(ValueError, match="wildcard"):
        pattern.origin_for_default()


def test_host_allowed_checks_every_pattern() -> None:
    patterns = [parse_allowed_host("api.openai.com"), parse_allowed_host("*.example.com")]
    assert host_allowed(parse_target("https://eu.example.com/"), patterns)
    assert host_allowed(parse_target("https://api.openai.com/"), patterns)
    assert not host_allowed(parse_target("https://evil.com/"), patterns)
    assert not host_allowed(parse_target("https://api.openai.com/"), [])
