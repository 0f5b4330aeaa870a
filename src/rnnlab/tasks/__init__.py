"""Cognitive tasks: the task API, the registry, and the built-in tasks."""

from ._base import AbstractTask as AbstractTask
from ._base import Trial as Trial
from ._base import available as available
from ._base import describe as describe
from ._base import make as make
from ._base import masked_cross_entropy as masked_cross_entropy
from ._base import masked_mse as masked_mse
from ._base import masked_r2 as masked_r2
from ._base import register as register
from ._base import registered_name as registered_name
from ._base import task_parameters as task_parameters
from ._base import tolerance_accuracy as tolerance_accuracy
from ._basic import FlipFlop as FlipFlop
from ._basic import PerceptualDecisionMaking as PerceptualDecisionMaking
from ._basic import SineWave as SineWave
