"""A vault whose database engine the test builds, so it can break the store under it.

``run_vault_on`` initialises a data directory like ``run_vault``, then hands the runtime an
engine from ``make_engine`` (with whatever event listeners the test attached). ``PageCap`` is
such a listener: a real SQLite size limit (``PRAGMA max_page_count``) that the test can lower to
"the disk is full" and raise again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine

from support.servers import Vault, free_port
from vaultgate.server.app import create_app
from vaultgate.server.bootstrap import initialise
from vaultgate.server.runtime import Runtime
from vaultgate.server.settings import load_settings
from vaultgate.server.storage.engine import create_engine

UNLIMITED = 1_073_741_823


class PageCap:
    """``PRAGMA max_page_count`` on every connection the pool hands out (it is per connection),
    and again as each transaction begins: the audit writer keeps its connection across batches."""

    def __init__(self, engine: Engine) -> None:
        self.pages = UNLIMITED
        sa.event.listen(engine, "checkout", self._apply)
        sa.event.listen(engine, "begin", self._apply_in)

    def _apply(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {int(self.pages)}")

    def _apply_in(self, conn: sa.Connection) -> None:
        self._apply(conn.connection.driver_connection, None, None)

    def fill(self, engine: Engine) -> None:
        """From now on the database may not grow: the next write needing a page fails."""
        with engine.connect() as conn:
            self.pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())

    def free(self) -> None:
        self.pages = UNLIMITED


@contextmanager
def run_vault_on(
    data_dir: Path,
    make_engine: Callable[[str], Engine] = create_engine,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[Vault, Engine]]:
    env = {
        "VAULTGATE_DATA_DIR": str(data_dir),
        "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8",
        **(extra_env or {}),
    }
    if database_url:
        env["VAULTGATE_DATABASE_URL"] = database_url
    port = free_port()
    settings = load_settings(env, port=port)
    result = initialise(settings)
    engine = make_engine(settings.db_url)
    app = create_app(settings, runtime=Runtime.build(settings, engine=engine))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="critical", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the vault did not start")
        time.sleep(0.02)
    vault = Vault(
        f"http://127.0.0.1:{port}",
        result.admin_key,
        result.portal_user,
        result.portal_password,
        data_dir,
        env,
    )
    try:
        yield vault, engine
    finally:
        server.should_exit = True
        thread.join(timeout=15)
