"""The README's Python examples run as written (in order, sharing one namespace, like a
notebook)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _run(blocks, namespace):
    for i, code in blocks:
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)


def test_readme_blocks_compile():
    for i, code in enumerate(_blocks()):
        compile(code, f"README.md python block {i}", "exec")


def test_readme_quick_start_and_custom_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = list(enumerate(_blocks()))
    quick = [b for b in blocks if "rl.tasks.make(\"flipflop\"" in b[1]]
    custom = [b for b in blocks if "class Copy(rl.tasks.AbstractTask)" in b[1]]
    assert quick and custom
    ns = {"__name__": "__readme__"}
    _run(quick, ns)
    assert ns["result"].history[-1]["accuracy"] >= 0.99
    _run(custom, {"__name__": "__readme__"})


@pytest.mark.slow
def test_every_readme_block_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run(list(enumerate(_blocks())), {"__name__": "__readme__"})
