"""``vaultgate providers``: the provider template catalogue, read from the installed package."""

from __future__ import annotations

import click

from vaultgate.cli.output import emit
from vaultgate.cli.remote import json_option


@click.group()
def providers() -> None:
    """The provider template catalogue (read from the installed package)."""


@providers.command("list")
@click.option("--search", default=None, help="Only providers whose name or slug matches.")
@json_option
def providers_list(search: str | None, as_json: bool) -> None:
    """List provider templates: slug, credential type and hosts."""
    from vaultgate.server.providers import load_catalogue

    catalogue = load_catalogue()
    items = [p.to_public() for p in (catalogue.search(search) if search else catalogue.all())]
    emit(items, as_json=as_json, columns=["slug", "name", "credential_type", "hosts"])


@providers.command("show")
@click.argument("slug")
@json_option
def providers_show(slug: str, as_json: bool) -> None:
    """Show one provider template: its injection, hosts and parameters."""
    from vaultgate.server.errors import VaultError
    from vaultgate.server.providers import load_catalogue

    try:
        emit(load_catalogue().get(slug).to_public(), as_json=as_json)
    except VaultError as exc:
        raise click.ClickException(exc.message) from None
