"""Test-session settings."""

import os

# The CLI turns on JAX's persistent compilation cache in a user folder; tests that call the
# CLI in-process must not switch it on for the whole session (test_cli_start.py tests it in a
# child process with its own folder).
os.environ.setdefault("RNNLAB_COMPILE_CACHE", "0")
