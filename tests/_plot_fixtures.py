"""Real rnnlab objects with known answers, shared by the plot and report tests (built once)."""

import functools
import itertools
import json

import jax
import numpy as np

import rnnlab as rl

# Three independent bistable units: tau dx/dt = -x + G tanh(x) + W_in u. Each unit has fixed
# points at 0 (unstable along that unit) and +-X_STAR with X_STAR = G tanh(X_STAR), so the network
# has 3^3 = 27: 8 stable corners, 12 saddles with 1 unstable mode, 6 with 2, and 1 unstable
# point (the origin, all 3 modes unstable). It solves the 3-bit flip-flop: a pulse of +-1 with
# gain W_IN pushes a unit over to the matching well.
G = 2.0
W_IN = 10.0
X_STAR = 1.9150080481545  # root of x = 2 tanh(x)
STABILITY_COUNTS = {"stable": 8, "saddle": 18, "unstable": 1}
N_UNSTABLE_DIRECTIONS = 12 * 1 + 6 * 2  # segments drawn at saddles


@functools.lru_cache(maxsize=None)
def flipflop_network():
    task = rl.tasks.make("flipflop", n_bits=3, n_steps=100)
    model = rl.CTRNN.from_weights(
        G * np.eye(3), W_IN * np.eye(3), np.eye(3) / np.tanh(X_STAR), dt=task.dt, tau=100.0
    )
    return task, model


@functools.lru_cache(maxsize=None)
def flipflop_fixed_points():
    _, model = flipflop_network()
    grid = np.array(list(itertools.product([-2.0, 0.0, 2.0], repeat=3)))
    cand = grid + 0.05 * np.random.default_rng(0).normal(size=grid.shape)
    from rnnlab.analysis import find_fixed_points

    return find_fixed_points(model, np.zeros(3), cand)


@functools.lru_cache(maxsize=None)
def flipflop_trajectories(n_trials: int = 24):
    task, model = flipflop_network()
    trials = task.sample_batch(jax.random.PRNGKey(7), n_trials)
    return trials, rl.simulate(model, trials.inputs)


def make_run_dir(path, *, with_fixed_points: bool = True, steps: int = 40):
    """A run directory in `rnnlab train`'s format holding the analytic flip-flop network.

    ``config.json`` is the one `rl.train` writes (a short real training of a small CT-RNN
    makes it and ``history.jsonl``); the model is then replaced by the analytic network so that
    the fixed points are known; ``analysis/fixed_points.safetensors`` is written by
    `FixedPoints.save`.
    """
    task, model = flipflop_network()
    small = rl.CTRNN(3, 8, 3, key=jax.random.PRNGKey(0), dt=task.dt)
    rl.train(small, task, key=jax.random.PRNGKey(1), steps=steps, batch_size=16,
             eval_every=10, eval_batch_size=32, learning_rate=1e-2, out_dir=path,
             progress=False)
    rl.save(path / "model.safetensors", model)
    config = json.loads((path / "config.json").read_text())
    config["model"] = rl.io._model_io.model_meta(model)
    (path / "config.json").write_text(json.dumps(config))
    if with_fixed_points:
        (path / "analysis").mkdir(exist_ok=True)
        flipflop_fixed_points().save(path / "analysis" / "fixed_points.safetensors")
    return path
