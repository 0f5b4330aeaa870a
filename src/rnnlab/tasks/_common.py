"""Shared machinery of the task library: epoch durations (fixed / uniform / choice /
truncated-exponential) sampled inside jit, per-trial scores, ring codes, and psychometric
curves."""

import abc
import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from .._validate import positive_int
from ._base import AbstractTask, Trial, masked_r2, per_trial  # noqa: F401 - per_trial re-exported

# ------------------------------------------------------------------------------ durations

_KINDS = ("fixed", "uniform", "choice", "truncexp")


def duration(value: Any) -> float | tuple:
    """Normalise a duration spec (ms); used as an ``eqx.field`` converter.

    Accepted forms (lists are turned into tuples, so JSON round trips):

    - a number ``d``: fixed;
    - ``("uniform", lo, hi)``: uniform on [lo, hi];
    - ``("choice", d1, d2, ...)``: one of the values, equally likely;
    - ``("truncexp", mean, lo, hi)``: exponential of mean ``mean`` conditioned on [lo, hi]
      (NeuroGym's ``TruncExp``).
    """
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        kind, *rest = value
        try:
            nums = tuple(float(v) for v in rest)
        except (TypeError, ValueError):
            return tuple(value)  # reported by check_duration
        if kind == "fixed" and len(nums) == 1:
            return nums[0]
        return (kind, *nums)
    return value if not isinstance(value, list) else tuple(value)


def check_duration(name: str, spec: Any, *, allow_zero: bool = True) -> None:
    """Raise ValueError naming ``name`` unless ``spec`` is a valid duration spec (ms)."""
    hint = (
        f"{name} must be a duration in ms: a number, ('uniform', lo, hi), "
        f"('choice', d1, d2, ...) or ('truncexp', mean, lo, hi); got {spec!r}"
    )
    if isinstance(spec, float):
        vals = [spec]
    elif isinstance(spec, tuple) and spec and spec[0] in _KINDS:
        kind, vals = spec[0], list(spec[1:])
        if not all(isinstance(v, float) for v in vals):
            raise ValueError(hint)
        if kind == "uniform" and (len(vals) != 2 or vals[1] < vals[0]):
            raise ValueError(hint + " (uniform needs lo <= hi)")
        if kind == "choice" and len(vals) < 1:
            raise ValueError(hint)
        if kind == "truncexp" and (len(vals) != 3 or vals[0] <= 0 or vals[2] < vals[1]):
            raise ValueError(hint + " (truncexp needs mean > 0 and lo <= hi)")
    else:
        raise ValueError(hint)
    for v in vals:
        if not math.isfinite(v) or v < 0 or (not allow_zero and v == 0):
            raise ValueError(hint + " (values must be finite and >= 0" +
                             (", and > 0)" if not allow_zero else ")"))


def _bounds_ms(spec) -> tuple[float, float]:
    if isinstance(spec, float):
        return spec, spec
    kind, *v = spec
    if kind == "uniform":
        return v[0], v[1]
    if kind == "choice":
        return min(v), max(v)
    return v[1], v[2]  # truncexp


def to_steps(ms: float, dt: float) -> int:
    """Whole steps of ``dt`` in ``ms`` (rounded to nearest)."""
    return int(round(ms / dt))


def max_steps(spec, dt: float) -> int:
    """The largest number of steps ``spec`` can give."""
    return to_steps(_bounds_ms(spec)[1], dt)


def min_steps(spec, dt: float) -> int:
    """The smallest number of steps ``spec`` can give."""
    return to_steps(_bounds_ms(spec)[0], dt)


def sample_steps(spec, key: PRNGKeyArray, dt: float) -> Array:
    """Draw a duration from ``spec`` (ms) and return it in whole steps (int32 scalar)."""
    if isinstance(spec, float):
        return jnp.asarray(to_steps(spec, dt), jnp.int32)
    kind, *v = spec
    if kind == "uniform":
        ms = jax.random.uniform(key, (), minval=v[0], maxval=v[1])
    elif kind == "choice":
        ms = jnp.asarray(v)[jax.random.randint(key, (), 0, len(v))]
    else:  # truncexp: inverse CDF of an exponential restricted to [lo, hi]
        mean, lo, hi = v
        a, b = math.exp(-lo / mean), math.exp(-hi / mean)
        u = jax.random.uniform(key, ())
        ms = -mean * jnp.log(a - u * (a - b))
        ms = jnp.clip(ms, lo, hi)
    return jnp.clip(jnp.round(ms / dt), to_steps(_bounds_ms(spec)[0], dt),
                    to_steps(_bounds_ms(spec)[1], dt)).astype(jnp.int32)


def window(t: Array, start, stop) -> Array:
    """Boolean [T]: ``start <= t < stop``."""
    return (t >= start) & (t < stop)


def float_tuple(values) -> tuple[float, ...]:
    """Converter: a sequence of numbers to a tuple of floats (left alone when impossible, so
    the check in ``__check_init__`` can name the argument)."""
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        return (float(values),)
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return values


def check_float_tuple(name: str, values, lo: float = -math.inf, hi: float = math.inf) -> None:
    ok = isinstance(values, tuple) and len(values) > 0 and all(
        isinstance(v, float) and math.isfinite(v) and lo <= v <= hi for v in values
    )
    if not ok:
        raise ValueError(
            f"{name} must be a non-empty list of numbers in [{lo}, {hi}], got {values!r}"
        )


def check_choice(name: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")


# ------------------------------------------------------------------------------ ring codes


def wrap_angle(x: Array) -> Array:
    """Angle wrapped to [-pi, pi)."""
    return (x + jnp.pi) % (2 * jnp.pi) - jnp.pi


def circular_distance(a: Array, b: Array) -> Array:
    """|a - b| on the circle, in [0, pi]."""
    return jnp.abs(wrap_angle(a - b))


def linear_ring_code(theta: ArrayLike, n: int) -> Array:
    """Angle ``theta`` as ``n`` channels at angles 2 pi k / n, linearly interpolated between the
    two neighbours (trainRNNbrain's code): channel floor(theta/arc) gets 1 - v, the next v."""
    arc = 2 * jnp.pi / n
    theta = theta % (2 * jnp.pi)
    pos = theta / arc
    i = jnp.floor(pos).astype(jnp.int32) % n
    v = pos - jnp.floor(pos)
    return jax.nn.one_hot(i, n) * (1 - v) + jax.nn.one_hot((i + 1) % n, n) * v


def decode_linear_ring(code: Array) -> Array:
    """Inverse of `linear_ring_code` for noisy codes [..., n]: pick the neighbouring pair with
    the largest sum and interpolate between them."""
    n = code.shape[-1]
    arc = 2 * jnp.pi / n
    pair = code + jnp.roll(code, -1, axis=-1)
    i = jnp.argmax(pair, axis=-1)
    a = jnp.take_along_axis(code, i[..., None], axis=-1)[..., 0]
    b = jnp.take_along_axis(code, ((i + 1) % n)[..., None], axis=-1)[..., 0]
    a, b = jnp.maximum(a, 0.0), jnp.maximum(b, 0.0)
    v = b / jnp.maximum(a + b, 1e-9)
    return ((i + v) * arc) % (2 * jnp.pi)


# ------------------------------------------------------------------------------ base class


class ScoredTask(AbstractTask):
    """A task scored trial by trial: `trial_scores` gives each trial's accuracy in [0, 1]
    (1/0 for decisions, a fraction of steps within tolerance for continuous outputs; the
    default is `AbstractTask.trial_scores`), and `accuracy` is their mean (weighted by `trial_weights`, which lets a task leave out trials
    with no correct answer, such as zero coherence). The multitask `Mixture` relies on this."""

    def trial_weights(self, trial: Trial) -> Array:
        """How much each trial counts in `accuracy` (default 1 each)."""
        return jnp.ones(trial.inputs.shape[:-2], jnp.float32)

    def accuracy(self, outputs: Array, trial: Trial) -> Array:
        s = self.trial_scores(outputs, trial)
        w = self.trial_weights(trial)
        return jnp.sum(w * s) / jnp.maximum(jnp.sum(w), 1e-9)

    def evaluate(self, outputs: Array, trial: Trial) -> dict[str, Array]:
        out = {"loss": self.loss(outputs, trial), "accuracy": self.accuracy(outputs, trial)}
        if self.loss_type == "mse":
            out["r2"] = masked_r2(outputs, trial.targets, trial.mask)
        return out


class DecisionTask(ScoredTask):
    """A task whose trials end in a discrete choice. Subclasses implement `choices`
    (the network's choice per trial, an int, -1 for none) and set ``psychometric_x`` (the
    condition on the x axis of the psychometric curve) and ``psychometric_by`` (a condition
    that splits curves, or None).

    Psychometric names and units, in the task's own terms (class attributes):
    ``psychometric_choice`` (the choice whose probability is plotted, the one that
    ``psychometric_x`` is evidence for, so the curve rises; default 1), ``choice_names``
    (names of choices 0 and 1: the y axis reads ``P(<name>)``), ``condition_labels``
    (condition -> axis label with units; default the name with spaces) and ``group_names``
    (``psychometric_by`` value -> curve name, e.g. ``{0: "motion", 1: "colour"}``).
    """

    is_decision_task: ClassVar[bool] = True
    has_psychometric: ClassVar[bool] = True
    psychometric_x: eqx.AbstractClassVar[str]
    psychometric_by: eqx.AbstractClassVar[str | None]
    psychometric_choice: ClassVar[int] = 1
    choice_names: ClassVar[tuple[str, str]] = ("choice 0", "choice 1")
    condition_labels: ClassVar[dict[str, str]] = {}
    group_names: ClassVar[dict[int, str]] = {}

    def condition_label(self, name: str) -> str:
        """The axis label of condition ``name`` (with its units)."""
        return self.condition_labels.get(name, name.replace("_", " "))

    @abc.abstractmethod
    def choices(self, outputs: Array, trial: Trial) -> Array:
        """The network's choice per trial (int32, [...batch])."""

    def trial_scores(self, outputs: Array, trial: Trial) -> Array:
        return (self.choices(outputs, trial) == trial.conditions["choice"]).astype(jnp.float32)

    def psychometric(self, model, key: PRNGKeyArray, *, n_trials: int = 2048,
                     x: str | None = None, by: str | None = None, bins: int | None = None):
        """The psychometric curve of ``model`` on this task: see `psychometric`."""
        return psychometric(model, self, key=key, n_trials=n_trials, x=x, by=by, bins=bins)


# ------------------------------------------------------------------------------ simulation


@eqx.filter_jit
def _run(model, task, key, n_trials):
    k_trial, k_noise = jax.random.split(key)
    trial = task.sample_batch(k_trial, n_trials)
    # the training forward pass: the noise training draws for the same key
    states = model.unroll_batch(trial.inputs, model.initial_state(), key=k_noise)
    return model.readout_all(states), trial


def run_trials(model, task: AbstractTask, *, key: PRNGKeyArray, n_trials: int = 256):
    """Simulate ``model`` on ``n_trials`` fresh trials of ``task`` (noise on, as in training).

    Returns ``(outputs [n_trials, T, n_out], trial)``.
    """
    n_trials = positive_int("n_trials", n_trials)
    if model.n_in != task.n_in or model.n_out != task.n_out:
        raise ValueError(
            f"model has n_in={model.n_in}, n_out={model.n_out} but the task has "
            f"n_in={task.n_in}, n_out={task.n_out}"
        )
    return _run(model, task, key, n_trials)


def psychometric(model, task, *, key: PRNGKeyArray, n_trials: int = 2048,
                 x: str | None = None, by: str | None = None,
                 bins: int | None = None) -> dict[str, np.ndarray]:
    """Psychometric curve(s): the probability of one choice as a function of a condition.

    Runs ``model`` on ``n_trials`` fresh trials of the decision ``task`` (noise on) and groups
    trials by the value of condition ``x`` (default ``task.psychometric_x``, for example the
    signed coherence), separately for each value of condition ``by`` (default
    ``task.psychometric_by``, for example the context). With ``bins`` the x values are put in
    that many equal-count bins (for continuous conditions).

    The choice counted is ``task.psychometric_choice`` (default 1): the one that the task's
    ``psychometric_x`` is evidence for, so that the curve rises with x (P(right) against
    the signed coherence toward right, for example).

    Returns a dict of numpy arrays:
        ``x`` [n_x] the levels (bin means when binned); ``groups`` [n_groups] the ``by`` values
        (``[0]`` when there is no split); ``p_choice`` [n_groups, n_x] the fraction of trials
        with the counted choice (NaN where a level has no trials); ``n`` [n_groups, n_x]
        trial counts; ``accuracy`` [n_groups, n_x] fraction correct;
    and the names, in the task's terms: ``choice`` (the counted choice's index),
    ``x_label`` (the x condition with its units), ``y_label`` (``"P(<choice name>)"``),
    ``group_labels`` [n_groups] (the curves' names; ``[""]`` without a split).
    """
    if not (isinstance(task, AbstractTask) and task.has_psychometric):
        raise TypeError(f"{type(task).__name__} is not a decision task with psychometric "
                        f"curves (has_psychometric; a DecisionTask, with choices())")
    outputs, trial = run_trials(model, task, key=key, n_trials=n_trials)
    choice = np.asarray(task.choices(outputs, trial))
    counted = int(task.psychometric_choice)
    x = x or task.psychometric_x
    by = by if by is not None else task.psychometric_by
    if x not in trial.conditions:
        raise ValueError(f"x={x!r} is not a condition of this task; "
                         f"conditions: {sorted(trial.conditions)}")
    if by is not None and by not in trial.conditions:
        raise ValueError(f"by={by!r} is not a condition of this task; "
                         f"conditions: {sorted(trial.conditions)}")
    xv = np.asarray(trial.conditions[x], dtype=np.float64)
    truth = np.asarray(trial.conditions["choice"])
    gv = np.zeros_like(xv) if by is None else np.asarray(trial.conditions[by], np.float64)
    if bins is not None:
        edges = np.quantile(xv, np.linspace(0, 1, bins + 1))
        idx = np.clip(np.searchsorted(edges, xv, side="right") - 1, 0, bins - 1)
        levels = np.array([xv[idx == b].mean() if np.any(idx == b) else np.nan
                           for b in range(bins)])
    else:
        levels, idx = np.unique(np.round(xv, 9), return_inverse=True)
    groups = np.unique(gv)
    shape = (len(groups), len(levels))
    p, n, acc = np.full(shape, np.nan), np.zeros(shape, int), np.full(shape, np.nan)
    for gi, g in enumerate(groups):
        for li in range(len(levels)):
            sel = (gv == g) & (idx == li)
            n[gi, li] = sel.sum()
            if sel.any():
                p[gi, li] = np.mean(choice[sel] == counted)
                acc[gi, li] = np.mean(choice[sel] == truth[sel])
    names = task.choice_names
    label_of = task.condition_label
    group_names = task.group_names
    if by is None:
        group_labels = [""]
    else:
        group_labels = [group_names.get(int(g), f"{label_of(by)} {g:g}")
                        if float(g).is_integer() else f"{label_of(by)} {g:g}" for g in groups]
    return {"x": levels, "groups": groups, "p_choice": p, "n": n, "accuracy": acc,
            "choice": counted, "x_label": label_of(x), "y_label": f"P({names[counted]})",
            "group_labels": group_labels}
