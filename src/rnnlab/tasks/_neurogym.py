"""Adapter from NeuroGym environments to rnnlab tasks (the optional ``neurogym`` extra).

NeuroGym generates trials with numpy and a stateful RNG, step by step. The adapter runs the
environment once, up front, to build a bank of ``n_trials`` whole trials (trial-aligned: one
trial per row, padded to the longest with the mask off), then `sample` draws rows from the
bank with a JAX key, so sampling stays pure and runs inside the compiled training step.
"""

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._validate import nonnegative_number, positive_int
from ._base import Trial
from ._common import DecisionTask

_MISSING = (
    "from_neurogym needs the NeuroGym package, which is not installed; install it with "
    "`pip install 'rnnlab[neurogym]'` (or `pip install neurogym`)"
)


def _import_neurogym():
    try:
        import neurogym
    except ImportError as e:  # pragma: no cover - exercised when the extra is absent
        raise ImportError(_MISSING) from e
    return neurogym


class NeuroGymTask(DecisionTask):
    """A bank of NeuroGym trials as an rnnlab task (build it with `from_neurogym`).

    Fields (arrays over the bank of N trials, T = the longest trial):
        inputs [N, T, n_in]: the environment's observations (with its own noise).
        labels [N, T] int32: NeuroGym's ground truth (0 = fixate, k = action k).
        valid [N, T]: 1 on the steps of the trial, 0 on padding.
        decision [N, T]: 1 on the steps of the decision period (``decision_period``).
        condition_values: numeric trial info (``ground_truth``, ``coh``, ...) [N] each.

    Targets are one-hot codes of the labels: ``targets="class"`` trains them with
    cross-entropy; ``targets="one_hot"`` regresses them with MSE. The loss mask covers every
    step where NeuroGym defines the ground truth (the whole trial; ``mask="decision"``: only
    the decision period). Accuracy: the action with the largest mean output over the decision
    steps equals the ground truth there (NeuroGym's decision performance). Conditions: the
    numeric trial info, ``choice`` (the correct action at the decision), ``length``, ``index``
    (row in the bank).
    """

    inputs: Array
    labels: Array
    valid: Array
    decision: Array
    condition_values: dict[str, Array]
    env_name: str = eqx.field(static=True)
    n_actions: int = eqx.field(static=True)
    targets: str = eqx.field(static=True)
    mask_mode: str = eqx.field(static=True)
    input_noise: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    settings: tuple = eqx.field(static=True)

    description = "a NeuroGym environment as a bank of trial-aligned trials"
    target_accuracy = 0.8
    psychometric_x = "ground_truth"
    psychometric_by = None

    @property
    def n_in(self) -> int:
        return int(self.inputs.shape[-1])

    @property
    def n_out(self) -> int:
        return self.n_actions

    @property
    def n_steps(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def n_trials(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def loss_type(self):
        return "cross_entropy" if self.targets == "class" else "mse"

    def trial_at(self, index) -> Trial:
        """Row ``index`` of the bank as a `Trial` (no extra noise)."""
        labels = self.labels[index]
        targets = jax.nn.one_hot(labels, self.n_actions)
        on = self.decision[index] if self.mask_mode == "decision" else self.valid[index]
        mask = jnp.broadcast_to(on[:, None], targets.shape).astype(jnp.float32)
        dec = self.decision[index]
        first = jnp.argmax(dec > 0)
        cond = {k: v[index] for k, v in self.condition_values.items()}
        cond.update(choice=labels[first].astype(jnp.int32),
                    length=jnp.sum(self.valid[index]).astype(jnp.int32),
                    index=jnp.asarray(index, jnp.int32), decision_mask=dec)
        return Trial(self.inputs[index], targets.astype(jnp.float32), mask, cond)

    def sample(self, key: PRNGKeyArray) -> Trial:
        k_i, k_n = jax.random.split(key)
        trial = self.trial_at(jax.random.randint(k_i, (), 0, self.n_trials))
        if self.input_noise > 0:
            noise = self.input_noise * jax.random.normal(k_n, trial.inputs.shape)
            valid = trial.conditions["length"] > jnp.arange(self.n_steps)
            trial = eqx.tree_at(lambda t: t.inputs,
                                trial, trial.inputs + noise * valid[:, None])
        return trial

    def choices(self, outputs: Array, trial: Trial) -> Array:
        dec = trial.conditions["decision_mask"].astype(outputs.dtype)[..., None]
        mean = jnp.sum(outputs * dec, axis=-2) / jnp.maximum(jnp.sum(dec, axis=-2), 1.0)
        return jnp.argmax(mean, axis=-1).astype(jnp.int32)

    def config(self) -> dict[str, Any]:
        return {"env": self.env_name, **dict(self.settings)}


def from_neurogym(
    env_or_name: Any,
    *,
    n_trials: int = 2000,
    seed: int = 0,
    targets: str = "class",
    mask: str = "trial",
    decision_period: str = "decision",
    input_noise: float = 0.0,
    **env_kwargs,
) -> NeuroGymTask:
    """Wrap a NeuroGym environment as an rnnlab task.

    Args:
        env_or_name: a NeuroGym environment, or its registered name (for example
            ``"PerceptualDecisionMaking-v0"``), built with ``neurogym.make(name, **env_kwargs)``
            (``dt=100``, ``timing={...}``, ...).
        n_trials: trials in the bank (drawn once, with NeuroGym's RNG seeded by ``seed``).
        targets: ``"class"`` (one-hot targets, cross-entropy; default) or ``"one_hot"``
            (one-hot targets regressed with MSE).
        mask: ``"trial"`` (every step of the trial; default) or ``"decision"`` (only the
            decision period).
        decision_period: the NeuroGym period scored as the decision (steps with a non-zero
            ground truth when the environment has no such period).
        input_noise: extra Gaussian noise (std) added at each `sample` on top of NeuroGym's.

    Returns: a `NeuroGymTask`; its ``dt`` is the environment's (build the model with it).
    """
    n_trials = positive_int("n_trials", n_trials)
    if targets not in ("class", "one_hot"):
        raise ValueError(f"targets must be 'class' or 'one_hot', got {targets!r}")
    if mask not in ("trial", "decision"):
        raise ValueError(f"mask must be 'trial' or 'decision', got {mask!r}")
    input_noise = nonnegative_number("input_noise", input_noise)
    if isinstance(env_or_name, str):
        ngym = _import_neurogym()
        try:
            env = ngym.make(env_or_name, **env_kwargs)
        except Exception as e:
            raise ValueError(f"neurogym could not make {env_or_name!r} with {env_kwargs}: "
                             f"{e}") from None
        name = env_or_name
    else:
        if env_kwargs:
            raise ValueError("environment keyword arguments only apply when env_or_name is a "
                             f"name; got an environment and {sorted(env_kwargs)}")
        env, name = env_or_name, type(getattr(env_or_name, "unwrapped", env_or_name)).__name__
    u = getattr(env, "unwrapped", env)
    if not hasattr(u, "new_trial"):
        raise TypeError(f"env_or_name must be a NeuroGym trial environment or its name, got "
                        f"{type(u).__name__}")
    n_actions = getattr(getattr(u, "action_space", None), "n", None)
    if n_actions is None:
        raise ValueError(f"{name}: only environments with a discrete action space are "
                         "supported (the targets are action classes)")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if hasattr(u, "seed"):
            u.seed(seed)
        else:  # pragma: no cover - newer gymnasium API
            env.reset(seed=seed)
        obs, gts, decs, infos = [], [], [], []
        for _ in range(n_trials):
            info = u.new_trial()
            ob = np.asarray(u.ob, np.float32)
            gt = np.asarray(u.gt)
            if gt.ndim != 1:
                raise ValueError(f"{name}: ground truth of shape {gt.shape} is not a class per "
                                 "step; only discrete-action environments are supported")
            dec = np.zeros(len(gt), np.float32)
            start, end = getattr(u, "start_ind", {}), getattr(u, "end_ind", {})
            if decision_period in start:
                dec[start[decision_period]:end[decision_period]] = 1.0
            else:
                dec[gt != 0] = 1.0
            obs.append(ob.reshape(len(gt), -1))
            gts.append(gt.astype(np.int32))
            decs.append(dec)
            infos.append(info or {})
    t_max = max(len(g) for g in gts)
    n_in = obs[0].shape[1]
    inputs = np.zeros((n_trials, t_max, n_in), np.float32)
    labels = np.zeros((n_trials, t_max), np.int32)
    valid = np.zeros((n_trials, t_max), np.float32)
    decision = np.zeros((n_trials, t_max), np.float32)
    for i, (o, g, d) in enumerate(zip(obs, gts, decs)):
        inputs[i, : len(g)] = o
        labels[i, : len(g)] = g
        valid[i, : len(g)] = 1.0
        decision[i, : len(g)] = d
    conds = {}
    keys = set.intersection(*(set(i) for i in infos)) if infos else set()
    for k in sorted(keys):
        vals = [i[k] for i in infos]
        if all(isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_))
               for v in vals):
            arr = np.asarray(vals)
            conds[str(k)] = jnp.asarray(arr.astype(np.int32 if arr.dtype.kind in "iub"
                                                   else np.float32))
    settings = (("n_trials", n_trials), ("seed", seed), ("targets", targets), ("mask", mask),
                ("decision_period", decision_period), ("input_noise", float(input_noise)),
                ("env_kwargs", tuple(sorted((k, repr(v)) for k, v in env_kwargs.items()))))
    return NeuroGymTask(
        inputs=jnp.asarray(inputs), labels=jnp.asarray(labels), valid=jnp.asarray(valid),
        decision=jnp.asarray(decision), condition_values=conds, env_name=name,
        n_actions=int(n_actions), targets=targets, mask_mode=mask,
        input_noise=float(input_noise), dt=float(getattr(u, "dt", 100.0)), settings=settings,
    )
