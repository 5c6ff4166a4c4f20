"""Every CLI command and option explains itself in one line."""

from __future__ import annotations

import click

from vaultgate.cli.commands import cli


def _walk(command: click.Command, path: str) -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _walk(sub, f"{path} {name}")
    return found


def test_every_command_and_option_has_help() -> None:
    missing = []
    for path, command in _walk(cli, "vaultgate"):
        if not (command.help or command.short_help):
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.help:
                missing.append(f"{path} {param.opts[0]}")
    assert missing == []


def test_the_time_filters_state_their_format() -> None:
    audit = cli.commands["audit"]
    assert isinstance(audit, click.Group)
    for sub in ("list", "export"):
        options = {p.name: p for p in audit.commands[sub].params if isinstance(p, click.Option)}
        for name in ("since", "until"):
            assert "ISO 8601" in str(options[name].help) and "2h" in str(options[name].help)


def test_secrets_add_help_explains_local_http_services() -> None:
    text = cli.commands["secrets"].commands["add"].get_help(click.Context(cli))  # type: ignore[attr-defined]
    flat = " ".join(text.split())
    assert "--host http://" in flat and "https only" in flat
    assert "--allow-private-destinations" in flat
