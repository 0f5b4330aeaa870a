"""Write one benchmark's section of benchmarks/RESULTS.md (atomically, leaving others intact)."""

import os
import platform
import re
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is written by the script it names; rerun that command to refresh it.\n"


def machine_line() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    return (
        f"machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"jax {jax.__version__} on {jax.default_backend()}"
    )


def write_section(name: str, body: str, command: str | None = None) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md with ``body``."""
    command = command or "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    block = (
        f"<!-- begin {name} -->\n## {name}\n\nCommand: `{command}`  \n{machine_line()}\n\n"
        f"{body.strip()}\n<!-- end {name} -->\n"
    )
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, RESULTS)
