"""A ``serve --workers N`` worker loads only what serving needs (its resident memory is the cost).

The supervisor migrates the schema before it starts any worker, so a worker has no use for
alembic (nor mako and pygments, which alembic drags in), and the CLI's HTTP client (httpx) is for
commands, not for serving. The worker is started exactly as the supervisor starts it: a spawned
process whose main module is the ``vaultgate`` script (which imports the whole CLI), running the
worker's entry up to the point where uvicorn would take over.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from functional.fleet.nodes import init_vault

NEVER_IN_A_WORKER = ("alembic", "mako", "pygments", "httpx")

# The main module of a spawned worker is re-imported in it: as the `vaultgate` console script
# does, this one imports the CLI at its top.
SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, os, sys
    from vaultgate.cli.main import main  # noqa: F401  (what the `vaultgate` script imports)

    def worker(conn):
        from vaultgate.server import serving
        from vaultgate.server.app import app_from_environment
        from vaultgate.server.settings import load_settings

        serving.uvicorn_config(app_from_environment(), "127.0.0.1", 0, load_settings(os.environ))
        conn.send(sorted(sys.modules))

    if __name__ == "__main__":
        from vaultgate.server.bootstrap import prepare_storage
        from vaultgate.server.settings import load_settings

        prepare_storage(load_settings(os.environ))  # what the supervisor does before spawning
        parent_modules = sorted(sys.modules)
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=worker, args=(theirs,))
        process.start()
        worker_modules = ours.recv()
        process.join()
        print(json.dumps({"worker": worker_modules, "supervisor": parent_modules}))
    """
)


def _top_level(modules: list[str]) -> set[str]:
    return {name.split(".", 1)[0] for name in modules}


def test_a_worker_imports_neither_migrations_nor_the_cli_client(tmp_path: Path) -> None:
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
    assert "vaultgate" in worker and "fastapi" in worker  # it did build the app
    assert worker.isdisjoint(NEVER_IN_A_WORKER), sorted(worker & set(NEVER_IN_A_WORKER))
    # The twin: the supervisor migrated, so the same check sees alembic there; it builds no app.
    assert "alembic" in supervisor
    assert "fastapi" not in supervisor and "jinja2" not in supervisor
