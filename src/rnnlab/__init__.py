"""rnnlab: train recurrent networks on cognitive tasks and reverse-engineer what they learned.

Submodules and the names below load on first use (PEP 562), so that ``import rnnlab`` and the
``rnnlab`` command start without importing JAX until something needs it.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_SUBMODULES = ("analysis", "interop", "io", "lfads", "models", "plot", "report", "runs", "tasks", "training")
# public name -> (module, attribute)
_NAMES = {
    "Trajectory": ("._simulate", "Trajectory"),
    "simulate": ("._simulate", "simulate"),
    "FixedPoints": (".analysis", "FixedPoints"),
    "find_fixed_points": (".analysis", "find_fixed_points"),
    "from_file": (".interop", "from_file"),
    "from_torch": (".interop", "from_torch"),
    "to_torch": (".interop", "to_torch"),
    "export": (".interop", "export"),
    "load": (".io", "load"),
    "save": (".io", "save"),
    "AbstractRNN": (".models", "AbstractRNN"),
    "CTRNN": (".models", "CTRNN"),
    "GRU": (".models", "GRU"),
    "LSTM": (".models", "LSTM"),
    "EchoStateNetwork": (".models", "EchoStateNetwork"),
    "FunctionModel": (".models", "FunctionModel"),
    "VanillaRNN": (".models", "VanillaRNN"),
    "Run": (".runs", "Run"),
    "analyze_run": (".runs", "analyze_run"),
    "TrainingDiverged": (".training", "TrainingDiverged"),
    "TrainResult": (".training", "TrainResult"),
    "train": (".training", "train"),
    "EnsembleResult": (".training", "EnsembleResult"),
    "train_ensemble": (".training", "train_ensemble"),
    "ForceResult": (".training", "ForceResult"),
    "train_force": (".training", "train_force"),
}

__all__ = [*_SUBMODULES, *_NAMES]


def __getattr__(name: str):
    import importlib

    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name in _NAMES:
        mod, attr = _NAMES[name]
        value = getattr(importlib.import_module(mod, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what static tools and IDEs see
    from . import analysis as analysis
    from . import interop as interop
    from . import io as io
    from . import lfads as lfads
    from . import models as models
    from . import plot as plot
    from . import report as report
    from . import runs as runs
    from . import tasks as tasks
    from . import training as training
    from ._simulate import Trajectory as Trajectory
    from ._simulate import simulate as simulate
    from .analysis import FixedPoints as FixedPoints
    from .analysis import find_fixed_points as find_fixed_points
    from .interop import export as export
    from .interop import from_file as from_file
    from .interop import from_torch as from_torch
    from .interop import to_torch as to_torch
    from .io import load as load
    from .io import save as save
    from .models import CTRNN as CTRNN
    from .models import GRU as GRU
    from .models import LSTM as LSTM
    from .models import AbstractRNN as AbstractRNN
    from .models import EchoStateNetwork as EchoStateNetwork
    from .models import FunctionModel as FunctionModel
    from .models import VanillaRNN as VanillaRNN
    from .runs import Run as Run
    from .runs import analyze_run as analyze_run
    from .training import EnsembleResult as EnsembleResult
    from .training import ForceResult as ForceResult
    from .training import TrainingDiverged as TrainingDiverged
    from .training import TrainResult as TrainResult
    from .training import train as train
    from .training import train_ensemble as train_ensemble
    from .training import train_force as train_force
