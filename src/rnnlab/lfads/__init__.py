"""LFADS in JAX: infer the latent dynamics, firing rates and inputs behind single-trial
population data (Sussillo et al. 2016; Pandarinath et al. 2018; lfads-torch's architecture).

    model = rl.lfads.LFADS(n_neurons, key=jax.random.PRNGKey(0))
    result = rl.lfads.fit(model, data, key=jax.random.PRNGKey(1), out="runs/lfads")
    post = rl.lfads.posterior_means(result.best_model, data, key=jax.random.PRNGKey(2))

Data sets (`Dataset`, lfads-torch HDF5 and NWB files, `simulate_spikes`) and `metrics` are
documented in their modules; docs/lfads.md walks through the whole pipeline.
"""

from . import metrics as metrics
from ._data import Dataset as Dataset
from ._files import read_hdf5 as read_hdf5
from ._files import read_nwb as read_nwb
from ._files import write_hdf5 as write_hdf5
from ._files import write_nwb as write_nwb
from ._fit import FitDiverged as FitDiverged
from ._fit import FitResult as FitResult
from ._fit import fit as fit
from ._model import LFADS as LFADS
from ._model import LFADSOutput as LFADSOutput
from ._model import load as load
from ._model import save as save
from ._posterior import Posterior as Posterior
from ._posterior import posterior_means as posterior_means
from ._simulate import simulate_spikes as simulate_spikes
