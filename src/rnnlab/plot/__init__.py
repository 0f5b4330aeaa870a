"""Publication figures (matplotlib; install with ``pip install 'rnnlab[viz]'``).

Every function takes rnnlab objects and returns a matplotlib Figure. matplotlib is imported
only when a function is called.
"""

from ..figdata import STABILITY_COLORS as STABILITY_COLORS
from ._connectivity import connectivity as connectivity
from ._lfads import lfads_factors as lfads_factors
from ._lfads import lfads_inputs as lfads_inputs
from ._lfads import lfads_rates as lfads_rates
from ._psychometric import psychometric as psychometric
from ._run import RunData as RunData
from ._run import load_run as load_run
from ._save import save_figure as save_figure
from ._spectra import eigenspectra as eigenspectra
from ._state_space import state_space as state_space
from ._topology import topology as topology
from ._training import training_curves as training_curves
from ._trials import trials as trials
