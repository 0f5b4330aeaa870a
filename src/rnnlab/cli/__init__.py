"""The `rnnlab` command line."""

import os
import sys
from pathlib import Path
from typing import Optional

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
from . import _lfads  # noqa: F401, E402  (rnnlab lfads simulate/fit/evaluate)
from . import _import  # noqa: F401, E402  (rnnlab import)


def compile_cache_dir() -> Path:
    """Where the CLI keeps JAX's persistent compilation cache: ``$RNNLAB_CACHE_DIR/jax``, else
    ``$XDG_CACHE_HOME/rnnlab/jax``, else ``~/.cache/rnnlab/jax``."""
    root = os.environ.get("RNNLAB_CACHE_DIR")
    if root:
        return Path(root) / "jax"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rnnlab" / "jax"


def enable_compile_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache for this process (and its children), so that
    a second `rnnlab analyze` or `evaluate` reuses the first one's compiled programs. Off when
    the environment variable ``RNNLAB_COMPILE_CACHE=0``. Returns the cache folder (None: off
    or the folder cannot be made)."""
    if os.environ.get("RNNLAB_COMPILE_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    folder = compile_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: run without the cache
    settings = {
        "jax_compilation_cache_dir": str(folder),
        # the CLI's programs are small: cache every one (at a 0.1 s threshold, two dozen small
        # programs were compiled afresh by every warm `rnnlab analyze`, 2 of its 4.4 s)
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    if "jax" in sys.modules:  # in-process use (tests, notebooks): JAX already read its config
        import jax

        for k, v in settings.items():
            jax.config.update(k, v)
    else:  # read by JAX when a command first imports it
        for k, v in settings.items():
            os.environ.setdefault(k.upper(), str(v))
    return folder


def _print_version(value: bool | None) -> None:
    if value:
        from .. import __version__

        typer.echo(f"rnnlab {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Optional[bool] = typer.Option(  # typer passes None when it is not given
        None, "--version", is_eager=True, callback=_print_version,
        help="Print rnnlab's version and exit.",
    ),
    compile_cache: bool = typer.Option(
        True, "--compile-cache/--no-compile-cache",
        help="Keep JAX's compiled programs in a user cache folder (~/.cache/rnnlab/jax) so "
        "the next command starts faster (also off with RNNLAB_COMPILE_CACHE=0).",
    ),
):
    """Train recurrent networks on cognitive tasks and reverse-engineer what they learned."""
    if compile_cache:
        enable_compile_cache()


def _describe_click_error(e) -> str:
    msg = e.format_message()
    param = getattr(e, "param", None)
    if param is not None:
        opts = getattr(param, "opts", None) or [getattr(param, "name", "?")]
        name = opts[0] if opts[0].startswith("-") else opts[0].upper()
        if name not in msg:
            msg = f"invalid value for {name}: {msg}"
    return msg


def _one_line(e: BaseException) -> str:
    """An exception as one line: an OSError as 'what: file' (its strerror and filename), any
    other as the first line of its message."""
    if isinstance(e, OSError) and e.strerror:
        names = [str(n) for n in (e.filename, e.filename2) if n is not None]
        text = e.strerror + (f": {' -> '.join(names)}" if names else "")
        if e.errno == 28:  # ENOSPC
            text += " (the disk is full; the files written before are intact)"
        return text
    if isinstance(e, MemoryError):
        return "out of memory"
    if isinstance(e, RecursionError):
        return "input nested too deeply"
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


_ARGV: list[str] = []


def current_argv() -> list[str]:
    """The arguments of the command being run (without the program name)."""
    return list(_ARGV)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; user mistakes print one line, not a traceback.

    Run as the program (``argv`` None: the `rnnlab` command, ``python -m rnnlab``), the
    process ends as soon as the command has finished, without Python's and XLA's teardown
    (`_leave`); called from Python with ``argv``, it returns the exit code."""
    if argv is None:
        _leave(_run(sys.argv[1:]))
    return _run(argv)


def _leave(code: int) -> None:
    """End the process with ``code`` once the command is done: every file is written (the
    writers are synchronous and atomic), JAX's pending effects are waited for, the output
    streams are flushed, then ``os._exit``. Python's teardown of a process that has imported
    JAX (its modules, the XLA client and thread pools) took 0.7-0.9 s after
    `rnnlab analyze` had finished (load average 5; 0.03-0.1 s this way), and tearing XLA
    down mid-work is where interrupted runs used to crash. Under a profiler or a tracer
    (cProfile, coverage), which write their results at exit, the process exits normally."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    # The command is done: a Ctrl-C from here on ends the process at once with 130, rather than
    # a KeyboardInterrupt traceback from this exit path (the handlers of `graceful_interrupts`
    # are gone by now).
    import signal

    try:
        signal.signal(signal.SIGINT, _exit_interrupted)
    except ValueError:  # not the main thread, which alone can set handlers: leave them
        pass
    try:
        if "jax" in sys.modules:
            import jax

            jax.effects_barrier()
    except Exception:  # noqa: BLE001 - nothing left to wait for
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`rnnlab ... | head`) or stream
            pass
    os._exit(code)


def _exit_interrupted(signum, frame) -> None:
    os._exit(130)


def _run(args: list[str]) -> int:
    _ARGV[:] = [str(a) for a in args]
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
        print(f"rnnlab: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (OSError, MemoryError, RecursionError) as e:  # a full disk, a name too long, ...
        print(f"rnnlab: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
