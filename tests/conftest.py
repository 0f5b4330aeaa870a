"""Test-session settings."""

import gc
import os

import pytest

# The CLI turns on JAX's persistent compilation cache in a user folder; tests that call the
# CLI in-process must not switch it on for the whole session (test_cli_start.py tests it in a
# child process with its own folder). A session-wide cache in a temporary folder, shared by
# the xdist workers and the CLI child processes, was tried: the same 39 CLI and analysis tests
# took 170 s with it and 170 s without (most programs differ between tests), so it is not used.
os.environ.setdefault("RNNLAB_COMPILE_CACHE", "0")


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs and traced functions after each test file. A worker runs
    dozens of files, each compiling programs (other shapes, other models) that later files do
    not reuse; kept, they grew one xdist worker past 4 GB. On four fixed-point and task files
    in one process: 1.56 GB peak with this, 2.38 GB without, and no slower."""
    yield
    if os.environ.get("RNNLAB_TEST_KEEP_CACHES") == "1":
        return
    import jax

    jax.clear_caches()
    gc.collect()
    if os.environ.get("RNNLAB_TEST_TRIM", "1") == "1":
        _return_freed_memory()


def _return_freed_memory() -> None:
    # glibc keeps freed blocks in its arenas: hand them back to the OS, so that the worker's
    # resident size follows what it holds, not its high-water mark
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl): nothing to do
        pass
