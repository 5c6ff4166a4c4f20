"""``serve --workers N`` processes load only what they need (their resident memory is the cost).

The schema is migrated before any worker starts, so a worker has no use for alembic (nor mako
and pygments, which alembic drags in); the CLI's HTTP client (httpx) is for commands, and the
portal's pages (their views, session signing with itsdangerous, password hashing with argon2,
templates with jinja2) load with the first page shown, not for serving proxied calls, and
FastAPI's check for pydantic v1 models finds ``pydantic.v1`` blocked instead of loading it. The
supervisor only watches its workers: the migration runs in a process of its own that exits, so
the supervisor never loads the database layer, the app or uvicorn. Each process is started
exactly as ``serve`` starts it: spawned, with the ``vaultgate`` script as main module (which
multiprocessing runs again in the worker, and which imports only ``cli.main``: the commands load
when it runs); the worker runs its entry up to the point where uvicorn would take over.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from functional.fleet.nodes import init_vault

NEVER_IN_A_WORKER = ("alembic", "mako", "pygments", "httpx", "jinja2", "itsdangerous", "argon2")
NEVER_IN_THE_SUPERVISOR = (
    *NEVER_IN_A_WORKER,
    "sqlalchemy",
    "cryptography",
    "pydantic",
    "fastapi",
    "uvicorn",
    "aiohttp",
)

# The main module of a spawned worker is re-imported in it: as the `vaultgate` console script
# does, this one imports the CLI at its top.
SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, os, sys
    from vaultgate.cli.main import main  # noqa: F401  (what the `vaultgate` script imports)

    def worker(conn):
        from vaultgate.server import serving

        serving.worker_config(dict(os.environ), "127.0.0.1", 0)
        conn.send(sorted(name for name, module in sys.modules.items() if module is not None))

    def prepare(settings):
        from vaultgate.cli.local import prepare_to_serve

        prepare_to_serve(settings, False, migrate=True)
        return sorted(sys.modules)

    if __name__ == "__main__":
        from vaultgate.cli.local import run_apart
        from vaultgate.server.serving import serve_many  # noqa: F401  (what `serve` imports)
        from vaultgate.server.settings import load_settings

        # What `serve --workers` does before it starts a worker, reporting the modules it used.
        preparer_modules = run_apart(prepare, load_settings(os.environ))
        parent_modules = sorted(sys.modules)
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=worker, args=(theirs,))
        process.start()
        worker_modules = ours.recv()
        process.join()
        print(
            json.dumps(
                {
                    "worker": worker_modules,
                    "supervisor": parent_modules,
                    "preparer": preparer_modules,
                }
            )
        )
    """
)


def _top_level(modules: list[str]) -> set[str]:
    return {name.split(".", 1)[0] for name in modules}


def test_workers_and_supervisor_import_only_what_they_use(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    init_vault(data_dir, None)
    script = tmp_path / "worker_entry.py"
    script.write_text(SCRIPT)
    env = {"VAULTGATE_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout)
    worker, supervisor = _top_level(loaded["worker"]), _top_level(loaded["supervisor"])
    preparer = _top_level(loaded["preparer"])
    assert "vaultgate" in worker and "fastapi" in worker  # it did build the app
    assert worker.isdisjoint(NEVER_IN_A_WORKER), sorted(worker & set(NEVER_IN_A_WORKER))
    # The `vaultgate` script runs again in a spawned worker; its commands load only with main().
    assert "vaultgate.cli.main" in loaded["worker"]
    assert not [
        m for m in loaded["worker"] if m.startswith("vaultgate.cli.") and m != "vaultgate.cli.main"
    ]
    # The portal's pages are for the first request for one (portal/mount.py).
    assert "vaultgate.server.portal.mount" in loaded["worker"]
    assert "vaultgate.server.portal.site" not in loaded["worker"]
    assert not [m for m in loaded["worker"] if m.startswith("vaultgate.server.portal.views")]
    # FastAPI's check for pydantic v1 models does not load pydantic.v1 (serving.py).
    assert "pydantic" in worker
    assert not [m for m in loaded["worker"] if m.startswith("pydantic.v1")]
    # A vault on SQLite serves without SQLAlchemy's PostgreSQL dialect.
    assert "sqlalchemy.dialects.sqlite" in loaded["worker"]
    assert not [m for m in loaded["worker"] if m.startswith("sqlalchemy.dialects.postgresql")]
    # The twin: the process that migrated did load alembic and the database layer.
    assert {"alembic", "sqlalchemy"} <= preparer
    assert supervisor.isdisjoint(NEVER_IN_THE_SUPERVISOR), sorted(
        supervisor & set(NEVER_IN_THE_SUPERVISOR)
    )
