"""Training: losses, the BPTT trainer, ensembles, checkpoints."""

from ._ensemble import EnsembleResult as EnsembleResult
from ._ensemble import train_ensemble as train_ensemble
from ._train import TrainingDiverged as TrainingDiverged
from ._train import TrainResult as TrainResult
from ._config import TrainConfig as TrainConfig
from ._train import batch_loss as batch_loss
from ._train import evaluate as evaluate
from ._train import make_optimizer as make_optimizer
from ._train import make_train_step as make_train_step
from ._train import train as train
from ._force import ForceResult as ForceResult
from ._force import train_force as train_force
from ._curriculum import CurriculumResult as CurriculumResult
from ._curriculum import train_curriculum as train_curriculum
from .._interrupt import TrainingInterrupted as TrainingInterrupted
from .._interrupt import graceful_interrupts as graceful_interrupts
