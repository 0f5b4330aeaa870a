"""The package's layering: models <- tasks <- training <- analysis <- runs <- plot/report <- cli.

Every import between rnnlab's subpackages (at module level or inside a function) goes from a
higher layer to a lower one (or within one layer); `rnnlab.cli` is imported by nothing but
itself and the entry points."""

import ast
import importlib.util
from pathlib import Path

import pytest

# where the package's sources are (found without importing it)
PACKAGE = Path(importlib.util.find_spec("rnnlab").origin).parent

# Layer of each top-level module of the package (higher may import lower).
LAYERS = {
    "_validate": 0, "_random": 0, "_interrupt": 0, "_blas": 0, "_compile": 0,
    "io": 1, "models": 1, "_simulate": 1,
    "interop": 2, "flax": 2,  # networks from PyTorch / files / Flax become models
    "tasks": 2,
    "training": 3,
    "analysis": 4,
    "runs": 5,
    "figdata": 6, "plot": 6, "report": 6, "lfads": 6,
    "cli": 7,
}
# Within io, the low-level file format sits below the models it serialises.
MODULE_LAYERS = {"io._safe": 0}


def _layer(parts: tuple[str, ...]) -> int | None:
    if not parts:
        return None
    if len(parts) >= 2 and ".".join(parts[:2]) in MODULE_LAYERS:
        return MODULE_LAYERS[".".join(parts[:2])]
    return LAYERS.get(parts[0])


def _imports(path: Path):
    """(imported module parts relative to rnnlab, line) for every rnnlab import in ``path``."""
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    package = rel[:-1] if rel[-1] != "__init__" else rel[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + tuple((node.module or "").split(".")) if node.module else base
                if not node.module:
                    for alias in node.names:
                        yield target + (alias.name,), node.lineno
                    continue
                yield tuple(p for p in target if p), node.lineno
            elif node.module and node.module.split(".")[0] == "rnnlab":
                yield tuple(node.module.split(".")[1:]), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "rnnlab":
                    yield tuple(alias.name.split(".")[1:]), node.lineno


def _sources():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def test_every_module_has_a_layer():
    for path in _sources():
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        if rel == ("__init__",):
            continue
        assert _layer(rel) is not None, f"{path}: add its package to LAYERS"


def test_no_import_from_a_lower_layer_to_a_higher_one():
    bad = []
    for path in _sources():
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        if rel == ("__init__",):  # the package's front door re-exports every layer
            continue
        own = _layer(rel)
        for target, line in _imports(path):
            layer = _layer(target)
            if layer is not None and layer > own:
                bad.append(f"{path.relative_to(PACKAGE)}:{line} imports rnnlab."
                           f"{'.'.join(target)} (layer {layer} > {own})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_nothing_outside_cli_imports_the_cli():
    bad = [f"{p.relative_to(PACKAGE)}:{line}" for p in _sources()
           if p.relative_to(PACKAGE).parts[0] != "cli"
           for target, line in _imports(p) if target[:1] == ("cli",)]
    assert not bad, bad


@pytest.mark.parametrize("source, expected", [
    ("from ..plot import x\n", ("plot",)),
    ("from ..analysis._structure import y\n", ("analysis", "_structure")),
    ("from . import z\n", ("models", "z")),
    ("import rnnlab.cli\n", ("cli",)),
])
def test_the_import_walker_sees_relative_and_absolute_imports(tmp_path, source, expected,
                                                              monkeypatch):
    # a file at rnnlab/models/_x.py: relative imports resolve against rnnlab.models
    fake_pkg = tmp_path / "rnnlab"
    (fake_pkg / "models").mkdir(parents=True)
    f = fake_pkg / "models" / "_x.py"
    f.write_text("def g():\n    " + source.replace("\n", "\n    ") + "pass\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake_pkg)
    assert [t for t, _ in _imports(f)] == [expected]
