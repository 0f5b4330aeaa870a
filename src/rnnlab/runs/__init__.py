"""Run directories: open, create and train them (`Run`), and analyse them (`analyze_run`,
`RunAnalysis`). The CLI, `rnnlab.plot` and `rnnlab.report` read runs only through here."""

from ._analysis import RunAnalysis as RunAnalysis
from ._analysis import analysis_inputs as analysis_inputs
from ._analysis import analyze_run as analyze_run
from ._analysis import manifolds_per_input as manifolds_per_input
from ._run import Run as Run
from ._run import RunError as RunError
from ._run import RunNotFoundError as RunNotFoundError
