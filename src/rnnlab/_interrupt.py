"""Clean interrupts of long training: SIGINT (Ctrl-C) and SIGTERM only set a flag; the training
loop sees it at the next chunk boundary (an evaluation or checkpoint step), writes its
checkpoint atomically and stops with `TrainingInterrupted`. XLA is never torn down mid-work
(an exception raised inside a running computation crashed the interpreter at exit). A second
signal exits at once (exit code 130)."""

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

_requested = threading.Event()


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM at a chunk boundary. ``step``: the optimiser steps
    done; ``checkpoint``: the checkpoint written there (None without ``out_dir``), from which
    ``resume=True`` continues to the same result as an uninterrupted run."""

    def __init__(self, step: int, checkpoint: Path | None):
        where = f"; checkpoint {checkpoint}" if checkpoint is not None else ""
        super().__init__(f"training interrupted at step {step}{where}")
        self.step = step
        self.checkpoint = checkpoint


def requested() -> bool:
    """Whether an interrupt arrived inside `graceful_interrupts`."""
    return _requested.is_set()


def _handler(signum, frame) -> None:
    if _requested.is_set():  # the second one: leave now
        os.write(2, b"\nrnnlab: interrupted again: exiting without a checkpoint\n")
        os._exit(130)
    _requested.set()
    os.write(2, b"\nrnnlab: interrupt received: finishing the current steps and writing the "
                b"checkpoint (interrupt again to exit at once)\n")


@contextlib.contextmanager
def graceful_interrupts() -> Iterator[None]:
    """Within this context, SIGINT and SIGTERM stop `rnnlab.train` / `train_ensemble` cleanly at
    the next chunk boundary (`TrainingInterrupted`, checkpoint written) instead of raising
    `KeyboardInterrupt` wherever Python happens to be. Only the main thread can install signal
    handlers; elsewhere this does nothing. The previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _requested.clear()
