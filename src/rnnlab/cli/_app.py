"""The `rnnlab` typer application; command modules register themselves on `app`."""

import typer

app = typer.Typer(
    name="rnnlab",
    help="Train recurrent networks on cognitive tasks and reverse-engineer what they learned.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class CLIError(Exception):
    """A user mistake reported as one line on stderr (exit code 2)."""
