"""The catalogue: every provider template, loaded from ``catalogue.json`` and checked once."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from pydantic import TypeAdapter, ValidationError

from vaultgate.server.errors import NotFound
from vaultgate.server.providers.models import Provider
from vaultgate.server.providers.schema import ProviderSpec, build_provider

_SPECS = TypeAdapter(list[ProviderSpec])


class CatalogueError(ValueError):
    """The shipped catalogue is malformed: a packaging bug, never a client's fault."""


class Catalogue:
    """Templates by slug, in catalogue order."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._by_slug: dict[str, Provider] = {}
        for provider in providers:
            if provider.slug in self._by_slug:
                raise CatalogueError(f"provider {provider.slug!r} is listed twice")
            self._by_slug[provider.slug] = provider

    def __len__(self) -> int:
        return len(self._by_slug)

    def __contains__(self, slug: object) -> bool:
        return slug in self._by_slug

    def get(self, slug: str) -> Provider:
        try:
            return self._by_slug[slug]
        except KeyError:
            raise NotFound(
                f"no provider template named {slug[:64]!r}", code="provider_not_found"
            ) from None

    def all(self) -> tuple[Provider, ...]:
        return tuple(self._by_slug.values())

    def search(self, text: str) -> tuple[Provider, ...]:
        """Providers whose slug, name or hosts contain ``text`` (case-insensitive).

        Slug and name matches come before host-only matches; an empty query lists everything.
        """
        needle = text.strip().lower()
        if not needle:
            return self.all()
        ranked = sorted(
            (rank, index, provider)
            for index, provider in enumerate(self._by_slug.values())
            if (rank := _rank(provider, needle)) is not None
        )
        return tuple(provider for _, _, provider in ranked)


def _rank(provider: Provider, needle: str) -> int | None:
    if provider.slug == needle:
        return 0
    if provider.slug.startswith(needle) or provider.name.lower().startswith(needle):
        return 1
    if needle in provider.slug or needle in provider.name.lower():
        return 2
    if any(needle in host.lower() for host in provider.hosts):
        return 3
    return None


def parse_catalogue(data: Any) -> Catalogue:
    """Build a catalogue from decoded JSON (a list of templates); CatalogueError when invalid."""
    try:
        specs = _SPECS.validate_python(data)
    except ValidationError as exc:
        raise CatalogueError(f"catalogue does not match its schema: {exc}") from None
    try:
        return Catalogue(build_provider(spec) for spec in specs)
    except ValueError as exc:
        raise CatalogueError(str(exc)) from None


@functools.cache
def load_catalogue() -> Catalogue:
    """The catalogue shipped with the package, read and checked on first use."""
    text = resources.files(__package__).joinpath("catalogue.json").read_text("utf-8")
    return parse_catalogue(json.loads(text))


def public_catalogue(catalogue: Catalogue) -> list[Mapping[str, Any]]:
    """The JSON body of ``GET /v1/providers``."""
    return [provider.to_public() for provider in catalogue.all()]
