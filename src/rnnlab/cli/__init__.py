"""The `rnnlab` command line."""

import sys

import typer

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer with click as a dependency
    from click import exceptions as _cx

from ._app import CLIError, app

# Command modules: importing one registers its commands on `app`.
from . import _train  # noqa: F401, E402
from . import _models  # noqa: F401, E402  (--model vanilla / gru / lstm)
from . import _plot  # noqa: F401, E402  (rnnlab plot)
from . import _report  # noqa: F401, E402  (rnnlab report)
from . import _analyze  # noqa: F401, E402  (rnnlab analyze)


def _describe_click_error(e) -> str:
    msg = e.format_message()
    param = getattr(e, "param", None)
    if param is not None:
        opts = getattr(param, "opts", None) or [getattr(param, "name", "?")]
        name = opts[0] if opts[0].startswith("-") else opts[0].upper()
        if name not in msg:
            msg = f"invalid value for {name}: {msg}"
    return msg


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; user mistakes print one line, not a traceback."""
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = app(args=args, standalone_mode=False, prog_name="rnnlab")
    except _cx.NoArgsIsHelpError:
        return 0
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("rnnlab: aborted", file=sys.stderr)
        return 130
    except _cx.ClickException as e:
        print(f"rnnlab: error: {_describe_click_error(e)}", file=sys.stderr)
        return 2
    except CLIError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
