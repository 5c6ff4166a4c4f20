"""The syntax of allowed-host entries and of host parameters.

An entry is ``host``, ``host:port``, ``*.domain`` (a wildcard of exactly one label) or an
origin ``scheme://host[:port]``. This module only checks the shape; matching a destination
against entries is the policy package's job.
"""

from __future__ import annotations

import re

from vaultgate.server.providers.templates import placeholders, substitute

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
_ENTRY = re.compile(
    r"(?:(?P<scheme>https?)://)?"
    r"(?P<wildcard>\*\.)?"
    r"(?P<host>[^:/]+)"
    r"(?::(?P<port>[0-9]{1,5}))?\Z"
)
_MAX_NAME = 253
# Stands in for a parameter when checking the shape of a template.
_SAMPLE_VALUE = "sample"


def is_dns_name(value: str) -> bool:
    """A DNS label or dotted name: letters, digits and inner hyphens, nothing else."""
    return len(value) <= _MAX_NAME and _DNS_NAME.match(value) is not None


def check_host_entry(entry: str) -> None:
    """Raise ValueError unless ``entry`` is a well-formed allowed-host entry."""
    match = _ENTRY.match(entry)
    if match is None:
        raise ValueError(f"malformed host entry {entry!r}")
    host = match["host"]
    if not is_dns_name(host):
        raise ValueError(f"host entry {entry!r} does not name a host")
    if match["wildcard"] and "." not in host:
        # "*.com" would admit every name under a public suffix.
        raise ValueError(f"wildcard entry {entry!r} must sit under a domain with two labels")
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        raise ValueError(f"host entry {entry!r} has an invalid port")


def check_host_template(template: str, params: set[str]) -> tuple[str, ...]:
    """Check a host template's shape and its parameter names; return the names it uses."""
    used = placeholders(template)
    unknown = [name for name in used if name not in params]
    if unknown:
        raise ValueError(f"host {template!r} uses undeclared parameters {unknown}")
    check_host_entry(substitute(template, dict.fromkeys(used, _SAMPLE_VALUE)))
    return used
