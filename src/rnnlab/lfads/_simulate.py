"""Spiking data from a trained network, with the truth attached (the pipeline of the
computation-thru-dynamics LFADS tutorial): trials of the task -> the network's states ->
firing rates through a random nonnegative readout -> Poisson counts."""

from typing import Any

import jax
import numpy as np

from .._validate import integer, positive_int, positive_number
from ._data import Dataset

__all__ = ["simulate_spikes"]


def _model_and_task(run_or_model: Any, task: Any):
    from ..models import AbstractRNN
    from ..runs import Run

    if isinstance(run_or_model, Run):
        model = run_or_model.model
        if task is None:
            task = run_or_model.require_task()
    elif isinstance(run_or_model, AbstractRNN):
        model = run_or_model
    else:
        raise TypeError("run_or_model must be an rnnlab Run (rl.Run.open(path)) or a model "
                        f"(AbstractRNN), got {type(run_or_model).__name__}")
    if task is None:
        raise ValueError("task is required when run_or_model is a model (a Run brings its "
                         "own task)")
    if not hasattr(task, "sample_batch"):
        raise TypeError(f"task must be an rnnlab task (AbstractTask), got "
                        f"{type(task).__name__}")
    if getattr(task, "n_in", model.n_in) != model.n_in:
        raise ValueError(f"task has {task.n_in} inputs but the model takes {model.n_in}")
    return model, task


def readout_rates(states: np.ndarray, weights: np.ndarray, max_rate: float) -> np.ndarray:
    """Expected counts per bin [trials, time, n_neurons] from ``states`` [trials, time, n]
    through the nonnegative ``weights`` [n, n_neurons]: each state dimension is scaled to
    [0, 1] over all trials and times, mixed by ``weights``, and each neuron's mixture mapped
    affinely onto [0, ``max_rate``] (counts per bin) over all trials and times, so that every
    neuron spans the whole range (a constant mixture gives a constant rate max_rate / 2)."""
    def unit_range(x):
        lo, hi = x.min(0), x.max(0)
        span = hi - lo
        scale = np.where(span > 1e-12 * np.maximum(np.abs(hi), 1.0), span, np.inf)
        return np.where(np.isfinite(scale), (x - lo) / scale, 0.5)

    flat = states.reshape(-1, states.shape[-1]).astype(np.float64)
    rates = max_rate * unit_range(unit_range(flat) @ weights)
    return rates.reshape(*states.shape[:-1], weights.shape[1])


def simulate_spikes(
    run_or_model: Any,
    task: Any = None,
    *,
    key: Any,
    n_neurons: int,
    max_rate: float = 20.0,
    n_trials: int = 1000,
    bin_size: float | None = None,
    sparsity: float = 0.5,
    noise: bool = False,
    valid_fraction: float = 0.2,
    heldout_neurons: int | None = None,
    n_forward: int = 0,
    seed: int = 0,
) -> Dataset:
    """Simulate spiking data from a trained network, with its truth.

    ``n_trials`` trials of ``task`` are run through the network (noise-free unless
    ``noise``); its states [trials, time, n_hidden] are scaled to [0, 1] per dimension and
    read out by a random nonnegative matrix W [n_hidden, n_neurons] (entries |N(0, 1)|, a
    fraction ``sparsity`` of them zeroed, at least one kept per neuron); each neuron's
    readout is mapped onto [0, ``max_rate``] spikes per second over all trials and times
    (its rate is an affine function of the states); counts per bin are Poisson with mean
    ``rate * bin_size``.

    Args:
        run_or_model: a trained `rl.Run` (its model and, by default, its task) or a model.
        task: the task whose trials drive the network (default: the run's task).
        key: PRNG key (trials, readout, spikes and noise all come from it).
        n_neurons: neurons to simulate.
        max_rate: peak firing rate of every neuron, spikes per second (default 20).
        n_trials: trials to simulate (default 1000).
        bin_size: seconds per time step; default the task's ``dt`` (ms) / 1000, else 0.01.
        sparsity: fraction of readout weights set to zero (default 0.5: neurons read
            different mixtures).
        noise: run the network with its recurrent/input noise (default: noise-free).
        valid_fraction, heldout_neurons, n_forward, seed: the split, as in
            `Dataset.from_arrays`.

    Returns: a `Dataset` of int32 counts [trials, time, neurons], whose ``truth`` holds
    ``"rates"`` (expected counts per bin, held-in then held-out neurons), ``"states"``
    (the network's states) and ``"inputs"`` (the task's inputs), for every trial in its
    original order.
    """
    from .._simulate import simulate
    from ..training._train import check_key

    key = check_key(key)
    model, task = _model_and_task(run_or_model, task)
    n_neurons = positive_int("n_neurons", n_neurons)
    n_trials = integer("n_trials", n_trials, 2)
    max_rate = positive_number("max_rate", max_rate)
    if bin_size is None:
        dt = getattr(task, "dt", None)
        bin_size = float(dt) / 1000.0 if dt is not None else 0.01
    bin_size = positive_number("bin_size", bin_size)
    sparsity = float(sparsity)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")

    k_trials, k_w, k_mask, k_spikes, k_noise = jax.random.split(key, 5)
    trials = task.sample_batch(k_trials, n_trials)
    traj = simulate(model, trials.inputs, key=k_noise if noise else None)
    states = np.asarray(traj.states, np.float64)
    n_hidden = states.shape[-1]
    weights = np.abs(np.asarray(jax.random.normal(k_w, (n_hidden, n_neurons)), np.float64))
    if sparsity > 0:
        keep = np.asarray(jax.random.uniform(k_mask, (n_hidden, n_neurons))) >= sparsity
        keep[np.argmax(weights, axis=0), np.arange(n_neurons)] = True
        weights = weights * keep
    rates = readout_rates(states, weights, max_rate * bin_size)
    counts = np.asarray(jax.random.poisson(k_spikes, rates, dtype=np.int32))
    truth = {
        "rates": rates.astype(np.float32),
        "states": states.astype(np.float32),
        "inputs": np.asarray(trials.inputs, np.float32),
    }
    return Dataset.from_arrays(counts, valid_fraction=valid_fraction, seed=seed,
                               heldout_neurons=heldout_neurons, n_forward=n_forward,
                               truth=truth, bin_size=bin_size)
