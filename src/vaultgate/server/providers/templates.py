"""Placeholders in catalogue templates: ``"Token token={token}"``, ``"{shop}.myshopify.com"``.

One grammar for host templates and injection formats: ``{name}`` where name is an identifier,
no format specs, conversions, indexing or positional fields, so every template can be checked
on load against the names it may use.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> tuple[str, ...]:
    """The names a template uses, in order of first use; ValueError when it is malformed."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed template {template!r}: {exc}") from None
    for literal, name, spec, conversion in parsed:
        if "{" in literal or "}" in literal:
            # Escaped braces would render differently in each consumer: refuse them outright.
            raise ValueError(f"template {template!r} contains a literal brace")
        if name is None:
            continue
        if not _NAME.match(name) or spec or conversion:
            raise ValueError(f"template {template!r} has an invalid placeholder {{{name}}}")
        if name not in names:
            names.append(name)
    return tuple(names)


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Fill the placeholders named in ``values``; others are left for a later stage."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
