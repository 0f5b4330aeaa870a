"""Psychometric curves as figures show them: choice fractions per condition level with binomial
standard errors, the maximum-likelihood logistic fit of each curve, and the task's labels."""

import dataclasses

import jax
import numpy as np

from .._validate import integer
from ..tasks import AbstractTask
from ..tasks import psychometric as task_psychometric


def fit_logistic(x, p, n) -> tuple[float, float]:
    """Maximum-likelihood logistic P(x) = 1 / (1 + exp(-(x - bias) / scale)).

    Binomial likelihood with ``n`` trials per point; ``scale`` is negative for a decreasing
    curve. Returns (bias, scale).
    """
    import scipy.optimize

    x, p, n = (np.asarray(a, float) for a in (x, p, n))
    ok = np.isfinite(p) & (n > 0)
    x, k, n = x[ok], p[ok] * n[ok], n[ok]
    span = max(float(np.ptp(x)), 1e-6) if len(x) else 1.0
    direction = 1.0 if len(x) < 3 or np.corrcoef(x, k / n)[0, 1] >= 0 else -1.0

    def nll(theta):
        bias, slope = theta
        z = (x - bias) * slope
        # -log p = log(1 + e^-z), -log(1-p) = log(1 + e^z)
        return float(np.sum(k * np.logaddexp(0, -z) + (n - k) * np.logaddexp(0, z)))

    res = scipy.optimize.minimize(nll, x0=[0.0, direction * 8.0 / span], method="Nelder-Mead",
                                  options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 4000})
    bias, slope = res.x
    return float(bias), float(1.0 / slope) if slope != 0 else float("inf")


def logistic(x, bias: float, scale: float) -> np.ndarray:
    """1 / (1 + exp(-(x - bias) / scale))."""
    return 1 / (1 + np.exp(-(np.asarray(x, float) - bias) / scale))


@dataclasses.dataclass(frozen=True)
class PsychometricCurves:
    """One or more psychometric curves, ready to draw.

    Attributes:
        x: [n_x] the condition levels (bin means when binned).
        p_choice: [n_groups, n_x] fraction of trials with the counted choice (NaN: no trials).
        n: [n_groups, n_x] trial counts.
        groups: [n_groups] the values of the condition that splits the curves (``[0]``
            without a split).
        group_labels: the curves' names, in the task's terms (``"motion context"``); ``""``
            without a split.
        x_label, y_label: axis labels with units, in the task's terms
            (``"signed coherence (%, + = right)"``, ``"P(right)"``).
        split: whether the curves are split by a condition (then a legend names them).
        fits: per curve, the logistic fit's (bias, scale) (see `fit_logistic`), or None when
            the curve has fewer than two levels with trials or all of its choices are equal.
    """

    x: np.ndarray
    p_choice: np.ndarray
    n: np.ndarray
    groups: np.ndarray
    group_labels: list[str]
    x_label: str
    y_label: str
    split: bool
    fits: tuple[tuple[float, float] | None, ...]

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def standard_errors(self) -> np.ndarray:
        """[n_groups, n_x] binomial standard errors sqrt(p (1 - p) / n) of ``p_choice``."""
        p = self.p_choice
        return np.sqrt(np.clip(p * (1 - p), 0, None) / np.maximum(self.n, 1))

    def fit_curve(self, i: int, n_points: int = 300) -> tuple[np.ndarray, np.ndarray] | None:
        """The fitted logistic of curve ``i`` over the levels that have trials: (x, P)
        [n_points] each, or None when curve ``i`` has no fit."""
        if self.fits[i] is None:
            return None
        ok = np.isfinite(self.p_choice[i]) & (self.n[i] > 0)
        xs = np.linspace(self.x[ok].min(), self.x[ok].max(), n_points)
        return xs, logistic(xs, *self.fits[i])


def psychometric_curves(model, task, *, key=None, n_trials: int = 2000, x: str | None = None,
                        by: str | None = None, bins: int | None = None) -> PsychometricCurves:
    """The psychometric curves of ``model`` on the decision ``task``, with their fits.

    The choice fractions come from `rnnlab.tasks.psychometric` (``n_trials`` fresh trials from
    ``key``, default ``PRNGKey(0)``, the network's own noise on); ``x``, ``by``, ``bins`` as
    there. Raises TypeError for a task without psychometric curves (``has_psychometric``).
    """
    if not (isinstance(task, AbstractTask) and task.has_psychometric):
        raise TypeError(
            f"psychometric curves need a decision task (trials that end in decisions, with "
            f"choices(), e.g. perceptual_decision_making); {type(task).__name__} is not one"
        )
    n_trials = integer("n_trials", n_trials, 2)
    if key is None:
        key = jax.random.PRNGKey(0)
    data = task_psychometric(model, task, key=key, n_trials=n_trials, x=x, by=by, bins=bins)
    by_name = by if by is not None else task.psychometric_by
    levels = np.asarray(data["x"], float)
    p_all, n_all = np.asarray(data["p_choice"], float), np.asarray(data["n"])
    fits = []
    for p, n in zip(p_all, n_all):
        ok = np.isfinite(p) & (n > 0)
        fits.append(fit_logistic(levels, p, n)
                    if ok.sum() >= 2 and 0 < np.nanmean(p) < 1 else None)
    return PsychometricCurves(
        x=levels, p_choice=p_all, n=n_all, groups=np.asarray(data["groups"]),
        group_labels=list(data["group_labels"]), x_label=data["x_label"],
        y_label=data["y_label"], split=by_name is not None, fits=tuple(fits))
