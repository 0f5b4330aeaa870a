"""Run directories: open, create and train them (`Run`), and analyse them (`analyze_run`,
`RunAnalysis`). The CLI, `rnnlab.plot` and `rnnlab.report` read runs only through here.

The analysis names load on first use (PEP 562): `rnnlab train` and `rnnlab evaluate` open runs
without importing the analysis stack (scipy.spatial, networkx: about 0.5 s of their start)."""

from typing import TYPE_CHECKING

from ._run import Run as Run
from ._run import RunError as RunError
from ._run import RunNotFoundError as RunNotFoundError

_ANALYSIS = ("RunAnalysis", "analysis_inputs", "analyze_run", "manifolds_per_input")

if TYPE_CHECKING:
    from ._analysis import RunAnalysis as RunAnalysis
    from ._analysis import analysis_inputs as analysis_inputs
    from ._analysis import analyze_run as analyze_run
    from ._analysis import manifolds_per_input as manifolds_per_input


def __getattr__(name: str):
    if name in _ANALYSIS:
        from . import _analysis

        return getattr(_analysis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ANALYSIS])
