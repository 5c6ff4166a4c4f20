"""Entry point of the ``vaultgate`` command: nothing but ``main``, which loads the commands.

A worker of ``vaultgate serve --workers N`` is spawned, and multiprocessing runs the parent's
main script again in it: the ``vaultgate`` script, which imports this module. So the commands
(``commands.py``: click's group, every command module) load when ``main()`` runs, and a worker
does not carry the CLI (about 0.6 MiB of its resident memory, ``test_worker_imports``).
"""

from __future__ import annotations


def main() -> None:
    from vaultgate.cli.commands import cli

    cli(obj={})
