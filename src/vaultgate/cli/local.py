"""Commands that act on a data directory or database directly: init, serve, master-key, users."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from vaultgate.cli.argv import NoPasswordInArgv
from vaultgate.cli.localdb import WHERE, require_vault
from vaultgate.server.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def settings_from(ctx: click.Context, **flags: Any) -> Settings:
    env: dict[str, str] = ctx.obj["env"]
    try:
        return load_settings(env, **flags)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data directory (VAULTGATE_DATA_DIR, default ./.vaultgate).",
)
db_option = click.option(
    "--database-url",
    default=None,
    help="SQLAlchemy URL (VAULTGATE_DATABASE_URL); default SQLite in the data dir.",
)


@click.command()
@data_dir_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def init(ctx: click.Context, data_dir: str | None, database_url: str | None, as_json: bool) -> None:
    """Create the master key file, the database, the first admin key and portal user."""
    from vaultgate.server.bootstrap import AlreadyInitialised, initialise
    from vaultgate.server.crypto import MasterKeyError

    settings = settings_from(ctx, data_dir=data_dir, database_url=database_url)
    try:
        result = initialise(settings)
    except (AlreadyInitialised, MasterKeyError) as exc:
        raise click.ClickException(f"{exc}; nothing was changed") from None
    if as_json:
        click.echo(json.dumps(result.__dict__))
        return
    _print_first_start(result.admin_key, result.portal_user, result.portal_password, settings)


def _print_first_start(admin_key: str, user: str, password: str, settings: Settings) -> None:
    url = f"http://{settings.host}:{settings.port}"
    click.echo("vaultgate is initialised. These are shown once; store them now.\n")
    click.echo(f"  admin key        {admin_key}")
    click.echo(f"  portal           {url}/portal")
    click.echo(f"  portal user      {user}")
    click.echo(f"  portal password  {password}\n")
    click.echo(f"  export VAULTGATE_URL={url} VAULTGATE_ADMIN_KEY={admin_key}\n")


@click.command()
@data_dir_option
@db_option
@click.option("--host", default=None, help="Bind address (VAULTGATE_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (VAULTGATE_PORT, default 8200).")
@click.option(
    "--allow-private-destinations",
    multiple=True,
    metavar="CIDR",
    help=(
        "Let upstream calls reach this private or loopback range (repeat), e.g. 127.0.0.1/32 "
        "for a service on this machine (VAULTGATE_ALLOW_PRIVATE_DESTINATIONS)."
    ),
)
@click.option(
    "--trusted-proxies",
    multiple=True,
    metavar="CIDR",
    help="Believe X-Forwarded-For only from these peers.",
)
@click.option(
    "--init",
    "init_missing",
    is_flag=True,
    help="Initialise the data directory first if it is new (what `make run` does).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes, each a full node (VAULTGATE_WORKERS, default 1).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    data_dir: str | None,
    database_url: str | None,
    host: str | None,
    port: int | None,
    allow_private_destinations: tuple[str, ...],
    trusted_proxies: tuple[str, ...],
    init_missing: bool,
    workers: int | None,
) -> None:
    """Serve the vault (management API, SDK API, proxy, portal)."""
    settings = settings_from(
        ctx,
        data_dir=data_dir,
        database_url=database_url,
        host=host,
        port=port,
        allow_private_destinations=list(allow_private_destinations) or None,
        trusted_proxies=list(trusted_proxies) or None,
    )
    workers = workers or int(ctx.obj["env"].get("VAULTGATE_WORKERS") or 1)
    from vaultgate.server.serving import serve_many, serve_one

    if workers <= 1:
        prepare_to_serve(settings, init_missing, migrate=False)
        serve_one(_checked(lambda: _app(settings), settings), settings)
        return
    # Several processes, each a full node (DESIGN 8): they re-read the settings from the
    # environment, so hand every resolved setting on through it. This process only supervises
    # them: the schema is migrated and the key set checked once, in a process of its own that
    # then exits, so the supervisor never loads the database layer, alembic or the app (it
    # stays resident, at a quarter of the memory, as long as the vault runs).
    _checked(lambda: run_apart(prepare_to_serve, settings, init_missing, migrate=True), settings)
    code = serve_many(settings, workers, {**os.environ, **settings_environment(settings)})
    if code:
        raise SystemExit(code)


def prepare_to_serve(settings: Settings, init_missing: bool, *, migrate: bool) -> None:
    """Initialise when asked and new, narrow the data directory; with ``migrate``, migrate the
    schema and check the key set (what a supervisor needs before it starts any worker)."""
    from vaultgate.server.bootstrap import (
        initialise,
        is_initialised,
        prepare_storage,
        protect_data_dir,
    )

    if init_missing and not is_initialised(settings):
        result = initialise(settings)
        _print_first_start(result.admin_key, result.portal_user, result.portal_password, settings)
    protect_data_dir(settings)
    if migrate:
        prepare_storage(settings)


def run_apart(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` run in a spawned process: its result, or its exception."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args, **kwargs).result()


def _app(settings: Settings) -> Any:
    from vaultgate.server.app import create_app

    return create_app(settings)


def _refuse_taken_port(settings: Settings) -> None:
    """A clear refusal when something listens on the port already: otherwise one process
    announced itself and then died of a traceback, and several joined the other listener's
    SO_REUSEPORT group and served nothing (fleet/sockets.py)."""
    from vaultgate.server.fleet.sockets import listen_refusal, refuse_taken

    try:
        refuse_taken(settings.host, settings.port)
    except OSError as exc:
        raise click.ClickException(listen_refusal(settings.host, settings.port, exc)) from None


def _checked(start: Callable[[], T], settings: Settings) -> T:
    """``start()``, a master key that does not fit refused with the hint where keys are."""
    from vaultgate.server.crypto import MasterKeyError

    try:
        result = start()
    except MasterKeyError as exc:
        hint = "" if settings.master_key or settings.key_file.exists() else f"; {WHERE}"
        raise click.ClickException(f"refusing to start: {exc}{hint}") from None
    _refuse_taken_port(settings)
    click.echo(f"vaultgate serving on http://{settings.host}:{settings.port}", err=True)
    return result


def settings_environment(settings: Settings) -> dict[str, str]:
    env = {
        "VAULTGATE_DATA_DIR": str(settings.data_dir.resolve()),
        "VAULTGATE_DATABASE_URL": settings.db_url,
        "VAULTGATE_HOST": settings.host,
        "VAULTGATE_PORT": str(settings.port),
        "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": " ".join(
            str(n) for n in settings.allow_private_destinations
        ),
        "VAULTGATE_TRUSTED_PROXIES": " ".join(str(n) for n in settings.trusted_proxies),
    }
    if settings.master_key_file is not None:
        env["VAULTGATE_MASTER_KEY_FILE"] = str(settings.master_key_file.resolve())
    return env


@click.group("master-key")
def master_key() -> None:
    """Manage the master key set."""


wait_option = click.option(
    "--wait",
    type=click.FloatRange(0, 600),
    default=10.0,
    show_default=True,
    help="Seconds to wait for every live node to report the new key before refusing.",
)


@master_key.command("add")
@data_dir_option
@db_option
@click.pass_context
def add(ctx: click.Context, data_dir: str | None, database_url: str | None) -> None:
    """Add a new master key to the key file, staged: nothing is sealed under it yet."""
    from vaultgate.server.crypto import FileKeyProvider

    settings = settings_from(ctx, data_dir=data_dir, database_url=database_url)
    if settings.master_key:
        raise click.ClickException(
            "VAULTGATE_MASTER_KEY is set: put a new id:key first in its list on every node"
        )
    engine = require_vault(settings)
    _checked_keyring(settings, engine)
    new = FileKeyProvider.add_key(settings.key_file, activate=False)
    click.echo(f"added master key {new.key_id} (staged)")
    click.echo(
        f"next: give every node's key file this key (copy {settings.key_file}), then run "
        "`vaultgate master-key rewrap`"
    )


@master_key.command("rotate")
@data_dir_option
@db_option
@wait_option
@click.pass_context
def rotate(ctx: click.Context, data_dir: str | None, database_url: str | None, wait: float) -> None:
    """Add a new master key and re-wrap every data key under it (one node sharing this key file)."""
    from vaultgate.server.crypto import FileKeyProvider

    settings = settings_from(ctx, data_dir=data_dir, database_url=database_url)
    if settings.master_key:
        raise click.ClickException(
            "VAULTGATE_MASTER_KEY is set: put a new key first in its list and run "
            "`vaultgate master-key rewrap` instead"
        )
    engine = require_vault(settings)
    keyring = _checked_keyring(settings, engine)
    # A rerun after an interruption finishes the job instead of adding yet another key.
    if _pending(engine, keyring.keys[-1].key_id) == 0:
        new = FileKeyProvider.add_key(settings.key_file, activate=False)
        click.echo(f"added master key {new.key_id}")
    _rewrap(settings, engine, wait)


@master_key.command("rewrap")
@data_dir_option
@db_option
@wait_option
@click.pass_context
def rewrap(ctx: click.Context, data_dir: str | None, database_url: str | None, wait: float) -> None:
    """Re-wrap every data key under the newest master key, once every live node holds it."""
    settings = settings_from(ctx, data_dir=data_dir, database_url=database_url)
    _rewrap(settings, require_vault(settings), wait)


def _rewrap(settings: Settings, engine: Any, wait: float) -> None:
    from vaultgate.server.crypto import Barrier
    from vaultgate.server.keys_at_rest import RewrapRefused, activate_for_rewrap, rewrap_all

    keyring = _checked_keyring(settings, engine)
    target = keyring.keys[-1].key_id
    try:
        keyring = activate_for_rewrap(engine, keyring, target, wait=wait)
    except RewrapRefused as exc:
        raise click.ClickException(str(exc)) from None
    done = rewrap_all(engine, Barrier(keyring))
    if done.unreadable:
        listed = "\n  ".join(done.unreadable)
        raise click.ClickException(
            f"re-wrapped {done.moved} data keys; {len(done.unreadable)} sealed values do not "
            f"open with this key set and were left as they are:\n  {listed}\n"
            "restore them from a backup or delete them, then run `vaultgate master-key rewrap` "
            "again"
        )
    if done.left:
        raise click.ClickException(
            f"re-wrapped {done.moved} data keys; {done.left} of {done.total} are still under an "
            "older master key (sealed by a node while this ran); run `vaultgate master-key "
            "rewrap` again"
        )
    click.echo(f"re-wrapped {done.moved} data keys; all {done.total} now under {target}")


def _checked_keyring(settings: Settings, engine: Any) -> Any:
    """The key set, checked against the database; a MasterKeyError becomes one line, not a trace."""
    from vaultgate.server.crypto import MasterKeyError
    from vaultgate.server.keys_at_rest import check_against_database, load_keyring

    try:
        keyring = load_keyring(settings)
        check_against_database(engine, keyring)
    except MasterKeyError as exc:
        raise click.ClickException(f"{exc}; {WHERE}") from None
    return keyring


def _pending(engine: Any, key_id: str) -> int:
    """How many sealed values (of every kind) are not wrapped under ``key_id``."""
    from vaultgate.server.sealed_values import not_under

    return len(not_under(engine, key_id))


@click.group()
def users() -> None:
    """Portal users."""


def _password(ctx: click.Context) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("password", hide_input=True, confirmation_prompt=True))


@users.command("add", cls=NoPasswordInArgv)
@click.argument("email")
@data_dir_option
@db_option
@click.pass_context
def users_add(
    ctx: click.Context, email: str, data_dir: str | None, database_url: str | None
) -> None:
    """Add a portal user; the password is read from a prompt or standard input."""
    from vaultgate.server.auth.users import create_user
    from vaultgate.server.clock import utcnow
    from vaultgate.server.errors import VaultError

    settings = settings_from(ctx, data_dir=data_dir, database_url=database_url)
    engine = require_vault(settings)
    try:
        create_user(engine, email, _password(ctx), utcnow())
    except VaultError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"added portal user {email}")


@users.command("reset-password", cls=NoPasswordInArgv)
@click.argument("email")
@data_dir_option
@db_option
@click.pass_context
def users_reset(
    ctx: click.Context, email: str, data_dir: str | None, database_url: str | None
) -> None:
    """Set a portal user's password (read from a prompt or standard input)."""
    from vaultgate.server.auth.users import set_password
    from vaultgate.server.errors import VaultError

    settings = settings_from(ctx, data_dir=data_dir, database_url=database_url)
    engine = require_vault(settings)
    try:
        set_password(engine, email, _password(ctx))
    except VaultError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"password of {email} changed")
