"""``python -m rnnlab ...``: the `rnnlab` command."""

from .cli import main

main()
