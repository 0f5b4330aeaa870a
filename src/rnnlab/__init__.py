"""rnnlab: train recurrent networks on cognitive tasks and reverse-engineer what they learned."""

__version__ = "0.1.0"

from . import analysis as analysis
from . import models as models
from . import plot as plot
from . import report as report
from . import tasks as tasks
from ._simulate import Trajectory as Trajectory
from ._simulate import simulate as simulate
from .analysis import FixedPoints as FixedPoints
from .analysis import find_fixed_points as find_fixed_points
from .io import load as load
from .io import save as save
from .models import AbstractRNN as AbstractRNN
from .models import CTRNN as CTRNN
from .models import GRU as GRU
from .models import LSTM as LSTM
from .models import EchoStateNetwork as EchoStateNetwork
from .models import VanillaRNN as VanillaRNN
from .training import TrainingDiverged as TrainingDiverged
from .training import TrainResult as TrainResult
from .training import train as train
from .training import EnsembleResult as EnsembleResult
from .training import train_ensemble as train_ensemble
from .training import ForceResult as ForceResult
from .training import train_force as train_force
