"""The task API: `Trial`, `AbstractTask`, losses and the registry."""

import abc
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validate import positive_int


class Trial(eqx.Module):
    """One trial (or a batch of trials, with a leading batch axis on every field).

    Fields:
        inputs: [T, n_in] float32.
        targets: [T, n_out] float32 (one-hot class codes for cross-entropy tasks).
        mask: [T, n_out] float32 in {0, 1}: which targets the loss and the accuracy count.
            Some tasks put loss weights here instead (the Yang et al. 2019 rules use 0, 1, 2,
            5 and 10, as Yang's code does); 0 always means "not counted".
            Cross-entropy tasks use ``mask[..., 0]`` as the per-step weight.
        conditions: dict of scalar arrays describing the trial (coherence, choice, ...).
    """

    inputs: Float[Array, "... time n_in"]
    targets: Float[Array, "... time n_out"]
    mask: Float[Array, "... time n_out"]
    conditions: dict[str, Array] = eqx.field(default_factory=dict)


# --------------------------------------------------------------------------------- losses


def _masked_targets(targets: Array, mask: Array) -> Array:
    # Targets where the mask is 0 are ignored exactly, even when they hold NaN or inf (a
    # common "no target here" marker): a product mask * NaN would be NaN, in the loss and its
    # gradient.
    return jnp.where(mask > 0, targets, jnp.zeros_like(targets))


def masked_mse(outputs: Array, targets: Array, mask: Array) -> Array:
    """sum(mask * (outputs - targets)^2) / sum(mask) over all axes (targets where the mask is
    0 are ignored, whatever their value)."""
    err = mask * (outputs - _masked_targets(targets, mask)) ** 2
    return jnp.sum(err) / jnp.maximum(jnp.sum(mask), 1.0)


def masked_cross_entropy(logits: Array, targets: Array, mask: Array) -> Array:
    """Mean over masked steps of -sum(targets * log_softmax(logits)); ``mask`` [..., T, n_out]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    w = mask[..., 0]
    nll = -jnp.sum(_masked_targets(targets, w[..., None]) * logp, axis=-1)
    return jnp.sum(w * nll) / jnp.maximum(jnp.sum(w), 1.0)


def masked_r2(outputs: Array, targets: Array, mask: Array) -> Array:
    """1 - SS_res / SS_tot over masked entries, per output channel pooled (variance about the
    masked mean of each channel)."""
    targets = _masked_targets(targets, mask)
    n = jnp.maximum(jnp.sum(mask, axis=tuple(range(mask.ndim - 1))), 1.0)
    mean = jnp.sum(mask * targets, axis=tuple(range(mask.ndim - 1))) / n
    ss_res = jnp.sum(mask * (outputs - targets) ** 2)
    ss_tot = jnp.sum(mask * (targets - mean) ** 2)
    return 1.0 - ss_res / jnp.maximum(ss_tot, 1e-12)


def per_trial(x: Array, mask: Array) -> Array:
    """Mean of ``x`` over each trial's masked entries: x, mask [..., T, n] -> [...]."""
    num = jnp.sum(x * mask, axis=(-2, -1))
    return num / jnp.maximum(jnp.sum(mask, axis=(-2, -1)), 1e-9)


def tolerance_accuracy(outputs: Array, targets: Array, mask: Array, tolerance: float) -> Array:
    """Fraction of masked entries with |output - target| < tolerance."""
    hit = (jnp.abs(outputs - targets) < tolerance).astype(jnp.float32)
    return jnp.sum(mask * hit) / jnp.maximum(jnp.sum(mask), 1.0)


# --------------------------------------------------------------------------------- tasks


class AbstractTask(eqx.Module):
    """A supervised, trial-based task.

    Subclasses are small frozen modules whose fields are the task's parameters (durations in
    steps or ms as documented, noise levels, ...) and implement `sample(key) -> Trial`, pure and
    jit-able. They set:

    - ``n_in``, ``n_out``: input and output sizes; ``n_steps``: trial length in steps;
      ``dt``: the time step the trial is laid out in (ms).
    - ``loss_type``: ``"mse"`` or ``"cross_entropy"``.
    - ``target_accuracy`` (class attribute): the accuracy a trained network should reach; the
      default early-stopping threshold.
    - ``description`` (class attribute): one line for ``rnnlab tasks``.
    - capabilities (class attributes, declared by the classes that have them; callers read
      them instead of probing for methods): ``is_decision_task`` (trials end in a discrete
      choice that `choices` returns: `DecisionTask`) and ``has_psychometric`` (the probability
      of a choice against a condition is worth plotting, `rnnlab.tasks.psychometric`; every
      `DecisionTask`).

    Batches come from `sample_batch`, which vmaps `sample` over split keys. `evaluate` returns
    at least ``loss`` and ``accuracy``; override `accuracy` for task-specific scoring (the default
    is the fraction of masked targets reached within ``tolerance``). `trial_scores` scores
    each trial on its own (the multitask `Mixture` relies on it).
    """

    description: ClassVar[str] = ""
    target_accuracy: ClassVar[float] = 0.9
    # Training settings `rnnlab train NAME` uses for this task when the option is not given
    # (None: the CLI's own default): the Adam learning rate (--lr), the number of hidden units
    # (--hidden), the activation function (--activation), trials per step (--batch-size) and
    # the step budget (--steps). Set by tasks that a default network learns only more slowly,
    # or not at all; see `recommended_training`.
    recommended_learning_rate: ClassVar[float | None] = None
    recommended_hidden: ClassVar[int | None] = None
    recommended_activation: ClassVar[str | None] = None
    recommended_batch_size: ClassVar[int | None] = None
    recommended_steps: ClassVar[int | None] = None
    # The accuracy at which `rnnlab train NAME` stops early when --target-accuracy is not given
    # (None: the CLI's rule, halfway from `target_accuracy` to 1). 1.0 trains all the steps and
    # keeps the best evaluated model: for tasks where the first network past the threshold has
    # not learned the published mechanism yet (a leaky or transient solution that scores well).
    recommended_target_accuracy: ClassVar[float | None] = None
    tolerance: ClassVar[float] = 0.25
    is_decision_task: ClassVar[bool] = False
    has_psychometric: ClassVar[bool] = False

    n_in: eqx.AbstractVar[int]
    n_out: eqx.AbstractVar[int]
    n_steps: eqx.AbstractVar[int]
    dt: eqx.AbstractVar[float]

    @property
    def loss_type(self) -> Literal["mse", "cross_entropy"]:
        return "mse"

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray) -> Trial:
        """One trial, a pure function of ``key``."""

    def sample_batch(self, key: PRNGKeyArray, batch_size: int) -> Trial:
        """``batch_size`` independent trials stacked on a leading axis."""
        batch_size = positive_int("batch_size", batch_size)
        # eager, not jitted: compiled as one program, XLA rounds some tasks' inputs
        # differently (the sine-wave levels by one ulp), and the declared
        # `fixed_point_inputs` must occur exactly in these trials
        return jax.vmap(self.sample)(jax.random.split(key, batch_size))

    def loss(self, outputs: Array, trial: Trial) -> Array:
        """Masked MSE or cross-entropy of ``outputs`` against ``trial`` (batched or not)."""
        if self.loss_type == "cross_entropy":
            return masked_cross_entropy(outputs, trial.targets, trial.mask)
        return masked_mse(outputs, trial.targets, trial.mask)

    def accuracy(self, outputs: Array, trial: Trial) -> Array:
        return tolerance_accuracy(outputs, trial.targets, trial.mask, self.tolerance)

    def trial_scores(self, outputs: Array, trial: Trial) -> Array:
        """Accuracy per trial, [...batch] from outputs [..., T, n_out]. Default: the fraction
        of masked entries within ``tolerance`` of the target."""
        hit = (jnp.abs(outputs - trial.targets) < self.tolerance).astype(jnp.float32)
        return per_trial(hit, (trial.mask > 0).astype(jnp.float32))

    def evaluate(self, outputs: Array, trial: Trial) -> dict[str, Array]:
        """Scores of ``outputs`` [(B,) T, n_out] on ``trial``: ``loss``, ``accuracy`` in [0, 1],
        and ``r2`` (masked R^2) for MSE tasks."""
        out = {"loss": self.loss(outputs, trial), "accuracy": self.accuracy(outputs, trial)}
        if self.loss_type == "mse":
            out["r2"] = masked_r2(outputs, trial.targets, trial.mask)
        return out

    # Fields holding input-noise levels; `noise_free` sets those present to 0.
    noise_fields: ClassVar[tuple[str, ...]] = ("input_noise", "sigma")

    def noise_free(self) -> "AbstractTask":
        """This task with every input-noise field of ``noise_fields`` that it has set to 0
        (the same trials otherwise: same key, same conditions and epochs)."""
        names = {f.name for f in dataclasses.fields(self)}
        zero = {n: 0.0 for n in self.noise_fields if n in names}
        return dataclasses.replace(self, **zero) if zero else self

    def fixed_point_inputs(self) -> dict[str, np.ndarray]:
        """The constant inputs the network receives, worth analysing for fixed points:
        ``{name: input vector [n_in] float64}``.

        Default: the input vector that occurs at the most scored time steps (some mask entry
        > 0) of 64 noise-free trials (``"most frequent input"``, see `most_frequent_input`),
        typically the one of the longest epoch without a stimulus. Tasks that know their epochs override this with the input of each epoch
        that has a neutral stimulus (fixation, delay, context cues, always-on channels),
        never an input the network does not receive.
        """
        return {"most frequent input": most_frequent_input(self)}

    def recommended_training(self) -> dict[str, float | int | str]:
        """The training settings this task recommends, as a dict with a subset of the keys
        ``learning_rate``, ``hidden``, ``activation``, ``batch_size``, ``steps`` and
        ``target_accuracy`` (only those the task sets; `rnnlab train` falls back to its own
        defaults, 1e-2, 64, ``"tanh"``, 64, 3000 and halfway from `target_accuracy` to 1, for
        the rest)."""
        rec = {
            "learning_rate": self.recommended_learning_rate,
            "hidden": self.recommended_hidden,
            "activation": self.recommended_activation,
            "batch_size": self.recommended_batch_size,
            "steps": self.recommended_steps,
            "target_accuracy": self.recommended_target_accuracy,
        }
        return {k: v for k, v in rec.items() if v is not None}

    def config(self) -> dict[str, Any]:
        """The task's parameters (its dataclass fields) as JSON-able values."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def most_frequent_input(task: AbstractTask, *, n_trials: int = 64, seed: int = 0) -> np.ndarray:
    """The input vector [n_in] that occurs at the most time steps of ``n_trials``
    noise-free trials of ``task`` (ties: the smallest in lexicographic order). Only steps in
    the loss (some mask entry > 0) count, so the padding after a short trial does not."""
    trials = task.noise_free().sample_batch(jax.random.PRNGKey(seed), n_trials)
    rows = np.asarray(trials.inputs, np.float64).reshape(-1, task.n_in)
    scored = np.asarray(trials.mask).reshape(rows.shape[0], -1).max(axis=1) > 0
    if scored.any():
        rows = rows[scored]
    values, counts = np.unique(rows, axis=0, return_counts=True)
    return values[int(np.argmax(counts))].copy()


# --------------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., AbstractTask]] = {}


def register(name: str):
    """Class decorator registering a task factory under ``name`` for `make`."""

    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"a task named {name!r} is already registered")
        _REGISTRY[name] = cls
        try:
            cls.registry_name = name
        except (AttributeError, TypeError):
            pass
        return cls

    return deco


def available() -> list[str]:
    """Names of all registered tasks, sorted."""
    return sorted(_REGISTRY)


def task_class(name: str) -> Callable[..., AbstractTask]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown task {name!r}; available tasks: {', '.join(available())}"
        ) from None


def describe(name: str) -> str:
    """The one-line description of a registered task."""
    return getattr(task_class(name), "description", "")


def task_parameters(name: str) -> dict[str, Any]:
    """The parameters of a registered task with their defaults."""
    cls = task_class(name)
    sig = inspect.signature(cls)
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def make(name: str, **kwargs) -> AbstractTask:
    """Build the registered task ``name`` with parameters ``kwargs``."""
    cls = task_class(name)
    params = task_parameters(name)
    unknown = set(kwargs) - set(params)
    if unknown:
        raise ValueError(
            f"task {name!r} has no parameter(s) {sorted(unknown)}; its parameters are "
            f"{sorted(params)}"
        )
    return cls(**kwargs)


def registered_name(task: AbstractTask) -> str | None:
    for name, cls in _REGISTRY.items():
        if type(task) is cls:
            return name
    return None
