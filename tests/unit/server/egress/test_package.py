"""The egress package's public surface: what the proxy handlers import."""

import vaultgate.server.egress as egress


def test_all_is_sorted_and_complete() -> None:
    # ruff's order: constants first, then everything else alphabetically.
    assert egress.__all__ == sorted(egress.__all__, key=lambda name: (not name.isupper(), name))
    assert set(egress.__all__) == {
        "HOP_BY_HOP",
        "AddressGuard",
        "HostPattern",
        "Resolve",
        "Target",
        "UpstreamClient",
        "UpstreamResponse",
        "UpstreamTimeouts",
        "VettingResolver",
        "capped",
        "host_allowed",
        "normalize_path",
        "parse_allowed_host",
        "parse_target",
        "strip_hop_by_hop",
        "system_resolve",
    }
    for name in egress.__all__:
        assert getattr(egress, name) is not None


def test_the_package_says_what_it_owns_and_must_never_do() -> None:
    assert egress.__doc__ is not None
    assert "never" in egress.__doc__
