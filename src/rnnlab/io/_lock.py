"""Run-directory locks and output-folder checks.

A run directory being written holds an OS file lock on ``RUN/.lock`` (``filelock``: ``flock``
on POSIX), held for the whole write. The OS drops the lock when its process dies, so the lock
of a killed run is taken over by the next one (its lock file may remain; that is harmless).
A second writer is refused at once, with the holder's process id.
"""

import os
import threading
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".lock"


class RunLockedError(ValueError):
    """Another process is writing this run directory."""


_held: dict[str, list] = {}
_guard = threading.Lock()


class RunLock:
    """``with RunLock(directory):`` holds ``directory/.lock`` (re-entrant within one process:
    nested holders of the same directory share one OS lock). Raises `RunLockedError` naming
    the directory and the process that holds it when another process does."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.key = str(self.directory.resolve())

    def __enter__(self) -> "RunLock":
        with _guard:
            entry = _held.get(self.key)
            if entry is not None:
                entry[1] += 1
                return self
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / LOCK_NAME
            lock = FileLock(str(path), timeout=0, is_singleton=False)
            try:
                lock.acquire()
            except Timeout:
                raise RunLockedError(
                    f"{self.directory} is being written by another process{_holder(path)}; "
                    "wait for it to finish or pick another --out") from None
            try:
                with open(path, "w", encoding="ascii") as f:
                    f.write(f"{os.getpid()}\n")
            except OSError:
                pass
            _held[self.key] = [lock, 1]
        return self

    def __exit__(self, *exc) -> None:
        with _guard:
            entry = _held.get(self.key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del _held[self.key]
                entry[0].release()


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def check_output_dir(path: str | os.PathLike, *, own_names: frozenset[str] | set[str],
                     what: str = "--out") -> Path:
    """``path`` as a folder rnnlab may write a run into, else a ValueError naming it: not the
    empty path, not a file (or below one), not the file-system root, and, if it exists and is
    not empty, a folder that holds only rnnlab's own files (``own_names``; symlinks resolved).
    """
    if str(path).strip() == "":
        raise ValueError(f"{what} is empty; give a directory for the run")
    p = Path(path)
    real = p.resolve()
    if real == Path(real.anchor):
        raise ValueError(f"{what} {str(p)!r} is the file-system root; give a directory for the "
                         "run")
    for parent in [real, *real.parents]:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{what} {str(p)!r}: {parent} is a file, not a directory")
        if parent.exists():
            break
    if real.is_dir():
        try:
            names = {e.name for e in os.scandir(real)}
        except OSError as e:
            raise ValueError(f"{what} {str(p)!r} cannot be read ({e.strerror})") from None
        foreign = sorted(n for n in names - set(own_names) - {LOCK_NAME}
                         if not (n.startswith(".") and n.endswith(".tmp"))
                         and not n.startswith("stage_"))  # a curriculum's stages
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            via = f" (a link to {real})" if real != p.absolute() else ""
            raise ValueError(
                f"{what} {str(p)!r}{via} is a non-empty directory that is not a run (it holds "
                f"{shown}); pick a new or empty directory")
    return p
