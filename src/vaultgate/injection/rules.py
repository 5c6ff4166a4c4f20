"""Injection rules: where a credential goes on an outgoing request.

A rule set is data (stored with a secret or taken from a provider template). ``format`` and each
additional ``value`` are templates over the credential's fields: ``"Bearer {token}"``,
``"Token token={token}"``, ``"{username}"``. Nothing here touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Target = Literal["header", "query"]


@dataclass(frozen=True, slots=True)
class AdditionalRule:
    """One more header or query parameter, e.g. ``anthropic-version: 2023-06-01``."""

    target: Target
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class InjectionRules:
    """The main header (``header``/``format``, both optional) plus additional rules.

    ``sigv4`` marks AWS signing: the whole signature is computed per request instead.
    """

    header: str | None = None
    format: str | None = None
    additional: tuple[AdditionalRule, ...] = field(default_factory=tuple)
    sigv4: bool = False
