"""A multitask mixture: several tasks in one network, told apart by one-hot rule inputs."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from ._base import AbstractTask, Trial, masked_r2, registered_name


def _task_label(task: AbstractTask, i: int) -> str:
    return registered_name(task) or f"{i}.{type(task).__name__}"


def _pad(x: Array, n_steps: int, width: int) -> Array:
    return jnp.pad(x, ((0, n_steps - x.shape[0]), (0, width - x.shape[1])))


class Mixture(AbstractTask):
    """Several tasks mixed trial by trial, for training one network on all of them.

    Each trial is one of ``tasks`` (drawn with ``weights``, default uniform). Its inputs are
    the task's inputs padded with zeros to the widest task, followed (``rule_inputs=True``) by
    a one-hot rule input naming the task, on for the whole trial; its targets and mask are
    padded to the widest output and the longest trial (padding masked off). All tasks must
    share ``dt`` and ``loss_type``.

    Sizes: ``n_in = max(n_in) + len(tasks)`` (without rule inputs: ``max(n_in)``),
    ``n_out = max(n_out)``, ``n_steps = max(n_steps)``.

    Conditions: ``task`` (index into ``tasks``) and every condition of every task under
    ``"<index>.<name>"`` (zeros on trials of other tasks).

    Accuracy: each trial scored by its own task's rule; ``evaluate`` also reports
    ``accuracy/<task name>`` per task.
    """

    tasks: tuple[AbstractTask, ...]
    weights: tuple[float, ...] | None = None
    rule_inputs: bool = True

    description = "multitask mixture of several tasks with one-hot rule inputs"

    def __init__(self, tasks: Sequence[AbstractTask], weights: Sequence[float] | None = None,
                 rule_inputs: bool = True):
        tasks = tuple(tasks)
        if not tasks or not all(isinstance(t, AbstractTask) for t in tasks):
            raise TypeError("tasks must be a non-empty sequence of rnnlab tasks")
        dts = {float(t.dt) for t in tasks}
        if len(dts) != 1:
            raise ValueError(f"tasks must share one dt, got dt values {sorted(dts)}")
        kinds = {t.loss_type for t in tasks}
        if len(kinds) != 1:
            raise ValueError(f"tasks must share one loss_type, got {sorted(kinds)}")
        if weights is not None:
            weights = tuple(float(w) for w in weights)
            if len(weights) != len(tasks) or any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(
                    f"weights must be {len(tasks)} non-negative numbers with a positive sum, "
                    f"got {weights!r}")
        if not isinstance(rule_inputs, bool):
            raise TypeError(f"rule_inputs must be True or False, got {rule_inputs!r}")
        self.tasks = tasks
        self.weights = weights
        self.rule_inputs = rule_inputs

    @property
    def dt(self) -> float:
        return self.tasks[0].dt

    @property
    def loss_type(self):
        return self.tasks[0].loss_type

    @property
    def n_task_inputs(self) -> int:
        return max(t.n_in for t in self.tasks)

    @property
    def n_in(self) -> int:
        return self.n_task_inputs + (len(self.tasks) if self.rule_inputs else 0)

    @property
    def n_out(self) -> int:
        return max(t.n_out for t in self.tasks)

    @property
    def n_steps(self) -> int:
        return max(t.n_steps for t in self.tasks)

    @property
    def target_accuracy(self) -> float:  # type: ignore[override]
        return min(t.target_accuracy for t in self.tasks)

    def _condition_templates(self):
        key = jax.random.PRNGKey(0)
        return [jax.eval_shape(t.sample, key).conditions for t in self.tasks]

    def sample(self, key: PRNGKeyArray) -> Trial:
        k_task, k_trial = jax.random.split(key)
        n = len(self.tasks)
        if self.weights is None:
            which = jax.random.randint(k_task, (), 0, n)
        else:
            which = jax.random.categorical(k_task, jnp.log(jnp.asarray(self.weights)))
        templates = self._condition_templates()
        T, n_in, n_out = self.n_steps, self.n_task_inputs, self.n_out

        def branch(i):
            def f(k):
                tr = self.tasks[i].sample(k)
                conds = {}
                for j, tmpl in enumerate(templates):
                    for name, sd in tmpl.items():
                        conds[f"{j}.{name}"] = (jnp.asarray(tr.conditions[name], sd.dtype)
                                                if j == i else jnp.zeros(sd.shape, sd.dtype))
                return (_pad(tr.inputs, T, n_in), _pad(tr.targets, T, n_out),
                        _pad(tr.mask, T, n_out), conds)
            return f

        inputs, targets, mask, conds = jax.lax.switch(which, [branch(i) for i in range(n)],
                                                      k_trial)
        if self.rule_inputs:
            rule = jnp.broadcast_to(jax.nn.one_hot(which, n), (T, n))
            inputs = jnp.concatenate([inputs, rule], axis=1)
        conds["task"] = jnp.asarray(which, jnp.int32)
        return Trial(inputs, targets, mask, conds)

    def sub_trial(self, i: int, outputs: Array, trial: Trial) -> tuple[Array, Trial]:
        """Outputs and trial restricted to task ``i``'s own layout (its steps, inputs, outputs
        and condition names); meaningful on the rows whose ``task`` condition is ``i``."""
        t = self.tasks[i]
        prefix = f"{i}."
        conds = {k[len(prefix):]: v for k, v in trial.conditions.items() if k.startswith(prefix)}
        sub = Trial(trial.inputs[..., : t.n_steps, : t.n_in],
                    trial.targets[..., : t.n_steps, : t.n_out],
                    trial.mask[..., : t.n_steps, : t.n_out], conds)
        return outputs[..., : t.n_steps, : t.n_out], sub

    def trial_scores(self, outputs: Array, trial: Trial) -> Array:
        which = trial.conditions["task"]
        scores = jnp.zeros(which.shape, jnp.float32)
        for i, t in enumerate(self.tasks):
            o, sub = self.sub_trial(i, outputs, trial)
            scores = jnp.where(which == i, t.trial_scores(o, sub), scores)
        return scores

    def accuracy(self, outputs: Array, trial: Trial) -> Array:
        return jnp.mean(self.trial_scores(outputs, trial))

    def evaluate(self, outputs: Array, trial: Trial) -> dict[str, Array]:
        scores = self.trial_scores(outputs, trial)
        out = {"loss": self.loss(outputs, trial), "accuracy": jnp.mean(scores)}
        if self.loss_type == "mse":
            out["r2"] = masked_r2(outputs, trial.targets, trial.mask)
        which = trial.conditions["task"]
        for i, t in enumerate(self.tasks):
            sel = (which == i).astype(jnp.float32)
            out[f"accuracy/{_task_label(t, i)}"] = (
                jnp.sum(scores * sel) / jnp.maximum(jnp.sum(sel), 1.0))
        return out

    def noise_free(self) -> "Mixture":
        return Mixture([t.noise_free() for t in self.tasks], self.weights, self.rule_inputs)

    def fixed_point_inputs(self) -> dict[str, np.ndarray]:
        """Each task's `fixed_point_inputs`, padded to the common width and followed by its
        rule input, named ``"<task>: <input>"``."""
        out = {}
        for i, t in enumerate(self.tasks):
            for name, vec in t.fixed_point_inputs().items():
                u = np.zeros(self.n_in)
                u[: t.n_in] = vec
                if self.rule_inputs:
                    u[self.n_task_inputs + i] = 1.0
                out[f"{_task_label(t, i)}: {name}"] = u
        return out

    def config(self):
        return {
            "tasks": [{"name": registered_name(t), "params": t.config()} for t in self.tasks],
            "weights": None if self.weights is None else list(self.weights),
            "rule_inputs": self.rule_inputs,
        }

