"""``vaultgate admin-keys``: create, list and revoke admin keys, remotely or on the data directory.

Remotely (the default) an admin key authorises the change, through ``/v1/admin-keys``. With
``--local`` (implied by ``--data-dir`` or ``--database-url``) the command opens the vault's
database and master key itself: the way back in when every admin key is lost. Both ways append
``key:create`` / ``key:revoke`` to the audit trail, naming who did it.
"""

from __future__ import annotations

import getpass
from typing import Any

import click

from vaultgate.cli.localdb import local_key_service
from vaultgate.cli.output import emit
from vaultgate.cli.params import expiry_body, expiry_options
from vaultgate.cli.remote import api, json_option

COLUMNS = ["id", "name", "hint", "created_at", "expires_at", "revoked_at"]


def local_options(fn: Any) -> Any:
    fn = click.option(
        "--database-url",
        default=None,
        help="SQLAlchemy URL of the vault's database (VAULTGATE_DATABASE_URL); implies --local.",
    )(fn)
    fn = click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="The vault's data directory (VAULTGATE_DATA_DIR); implies --local.",
    )(fn)
    return click.option(
        "--local",
        is_flag=True,
        help="Work on the data directory or database directly, without an admin key (recovery).",
    )(fn)


def _local(ctx: click.Context, local: bool, data_dir: str | None, db: str | None) -> Any:
    """The local KeyService, or None for the remote API; local when any local flag is given."""
    if not (local or data_dir or db):
        return None
    from vaultgate.cli.local import settings_from

    return local_key_service(settings_from(ctx, data_dir=data_dir, database_url=db))


def _local_actor() -> Any:
    from vaultgate.server.auth.services import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(portal_user=f"vaultgate admin-keys --local (os user {user})")


@click.group("admin-keys")
def admin_keys() -> None:
    """Admin keys (vg_admin_...): with an admin key, or --local on the data directory."""


@admin_keys.command("create")
@click.option("--name", required=True, help="A name to tell the key by.")
@expiry_options
@local_options
@json_option
@click.pass_context
def admin_keys_create(
    ctx: click.Context,
    name: str,
    expires_at: str | None,
    expires_in: int | None,
    local: bool,
    data_dir: str | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Create an admin key; it is printed once, store it now."""
    body: dict[str, Any] = {"name": name, **expiry_body(expires_at, expires_in)}
    service = _local(ctx, local, data_dir, database_url)
    if service is None:
        emit(api(ctx).call("POST", "/v1/admin-keys", json=body), as_json=as_json)
        return
    from vaultgate.server.auth.services import parse_expiry
    from vaultgate.server.clock import utcnow
    from vaultgate.server.errors import VaultError

    try:
        expiry = parse_expiry(body.get("expires_at"), utcnow())
        plaintext, meta = service.create_key("admin", name, _local_actor(), expires_at=expiry)
    except VaultError as exc:
        raise click.ClickException(exc.message) from None
    emit({**meta, "api_key": plaintext}, as_json=as_json)


@admin_keys.command("list")
@local_options
@json_option
@click.pass_context
def admin_keys_list(
    ctx: click.Context, local: bool, data_dir: str | None, database_url: str | None, as_json: bool
) -> None:
    """List admin keys, revoked ones included (hints only, never a key)."""
    service = _local(ctx, local, data_dir, database_url)
    items = (
        api(ctx).call("GET", "/v1/admin-keys")["items"]
        if service is None
        else service.list_admin_keys()
    )
    emit(items, as_json=as_json, columns=COLUMNS)


@admin_keys.command("revoke")
@click.argument("key_id")
@local_options
@click.pass_context
def admin_keys_revoke(
    ctx: click.Context, key_id: str, local: bool, data_dir: str | None, database_url: str | None
) -> None:
    """Revoke an admin key; remotely the last usable one is refused, locally it is allowed."""
    service = _local(ctx, local, data_dir, database_url)
    if service is None:
        api(ctx).call("DELETE", f"/v1/admin-keys/{key_id}")
        click.echo(f"revoked admin key {key_id}")
        return
    from vaultgate.server.errors import VaultError

    try:
        service.get_admin_key(key_id)
        service.revoke_key(key_id, _local_actor(), allow_last_admin=True)
    except VaultError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"revoked admin key {key_id}")
    if not any(k["revoked_at"] is None for k in service.list_admin_keys()):
        click.echo(
            "warning: no admin key is left; make one with "
            "`vaultgate admin-keys create --local --name NAME`",
            err=True,
        )
