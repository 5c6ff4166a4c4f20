"""Commands that read a secret refuse one on the command line, without repeating it.

click's own errors would echo it back ("Got unexpected extra argument (sk-...)") into the
terminal and its scrollback, and ``--value`` would be answered with "Did you mean --name?".
Both are caught before click parses, and the message says how to give the value instead.
"""

from __future__ import annotations

from typing import Any, Final

import click

HOW: Final = (
    "type it at the hidden prompt (leave the value out), pipe it in with --stdin, "
    "or read it with --from-file FILE"
)
# Flags a newcomer tries for the value; none exists, on purpose.
VALUE_FLAGS: Final = ("--value", "--secret", "--token", "--password", "--credential", "--key")


def refusal(what: str, how: str = HOW) -> str:
    return f"{what} is never read from the command line (shell history and `ps` keep it): {how}"


class NoSecretInArgv(click.Command):
    """A click command whose leftover arguments are refused as a possible secret, unechoed."""

    what = "a secret value"
    how = HOW

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["context_settings"] = {
            **kwargs.get("context_settings", {}),
            "allow_extra_args": True,
        }
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for arg in args:
            if arg == "--":
                break
            if arg.split("=", 1)[0] in VALUE_FLAGS:
                raise click.UsageError(
                    f"{arg.split('=', 1)[0]}: {refusal(self.what, self.how)}", ctx
                )
        rest = super().parse_args(ctx, args)
        if ctx.args:
            raise click.UsageError(
                "unexpected argument (not shown: it may be a secret): "
                + refusal(self.what, self.how),
                ctx,
            )
        return rest


class NoPasswordInArgv(NoSecretInArgv):
    what = "a password"
    how = "type it at the hidden prompt, or pipe it in on standard input"
