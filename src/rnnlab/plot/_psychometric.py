"""Psychometric curves for decision tasks."""

import jax
import numpy as np
import scipy.optimize

from ._style import new_figure, paper_style


def psychometric_data(model, task, *, key, n_trials: int = 2000, x: str | None = None,
                     by: str | None = None, bins: int | None = None) -> dict:
    """`rnnlab.tasks.psychometric` (the choice fractions), with its argument checks."""
    from ..tasks import psychometric as task_psychometric

    if not hasattr(task, "choices"):
        raise TypeError(
            f"psychometric curves need a decision task (with choices(), e.g. "
            f"perceptual_decision_making; it has no decisions either); "
            f"{type(task).__name__} is not one"
        )
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 2:
        raise ValueError(f"n_trials must be an integer >= 2, got {n_trials!r}")
    return task_psychometric(model, task, key=key, n_trials=n_trials, x=x, by=by, bins=bins)


def fit_logistic(x, p, n) -> tuple[float, float]:
    """Maximum-likelihood logistic P(x) = 1 / (1 + exp(-(x - bias) / scale)).

    Binomial likelihood with ``n`` trials per point; ``scale`` is negative for a decreasing
    curve. Returns (bias, scale).
    """
    x, p, n = (np.asarray(a, float) for a in (x, p, n))
    ok = np.isfinite(p) & (n > 0)
    x, k, n = x[ok], p[ok] * n[ok], n[ok]
    span = max(float(np.ptp(x)), 1e-6) if len(x) else 1.0
    direction = 1.0 if np.corrcoef(x, k / n)[0, 1] >= 0 or len(x) < 3 else -1.0

    def nll(theta):
        bias, slope = theta
        z = (x - bias) * slope
        # -log p = log(1 + e^-z), -log(1-p) = log(1 + e^z)
        return float(np.sum(k * np.logaddexp(0, -z) + (n - k) * np.logaddexp(0, z)))

    res = scipy.optimize.minimize(nll, x0=[0.0, direction * 8.0 / span], method="Nelder-Mead",
                                  options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 4000})
    bias, slope = res.x
    return float(bias), float(1.0 / slope) if slope != 0 else float("inf")


def psychometric(
    model, task, *, key=None, n_trials: int = 2000, x: str | None = None, by: str | None = None,
    bins: int | None = None,
):
    """Psychometric curve: the fraction of trials with one choice against a condition.

    The fractions come from `rnnlab.tasks.psychometric` (``n_trials`` fresh trials, the
    network's own noise on): points with binomial standard errors, and the maximum-likelihood
    logistic fit as a curve. One curve per value of ``by`` (e.g. the context of the
    context-dependent task). The counted choice, the axis labels (with units) and the curve
    names are the task's own (`DecisionTask.psychometric_choice`, ``choice_names``,
    ``condition_labels``, ``group_names``): for perceptual_decision_making P(right) against
    the signed coherence in % toward right, rising; for context_decision_making P(right)
    against the motion coherence (a fraction), one curve per context, "motion context" and
    "colour context".

    Args:
        model: a trained network; task: a decision task.
        key: PRNG key for the trials and the network noise (default ``PRNGKey(0)``).
        n_trials: number of fresh trials. Default 2000.
        x, by, bins: the condition on the x axis, the one that splits curves (defaults: the
            task's ``psychometric_x`` / ``psychometric_by``), equal-count bins for continuous x.

    Returns: the matplotlib Figure.
    """
    if key is None:
        key = jax.random.PRNGKey(0)
    data = psychometric_data(model, task, key=key, n_trials=n_trials, x=x, by=by, bins=bins)
    by_name = by if by is not None else getattr(task, "psychometric_by", None)
    levels = np.asarray(data["x"], float)
    with paper_style():
        fig, axes = new_figure(1, 1, figsize=(3.6, 2.9))
        ax = axes[0, 0]
        groups = np.asarray(data["groups"])
        for i, g in enumerate(groups):
            color = "k" if len(groups) == 1 else f"C{i}"
            label = None if by_name is None else data["group_labels"][i]
            p, n = np.asarray(data["p_choice"])[i], np.asarray(data["n"])[i]
            se = np.sqrt(np.clip(p * (1 - p), 0, None) / np.maximum(n, 1))
            ax.errorbar(levels, p, yerr=se, fmt="o", color=color, ms=4, capsize=2, lw=1,
                        label=label, gid="points")
            ok = np.isfinite(p) & (n > 0)
            if ok.sum() >= 2 and 0 < np.nanmean(p) < 1:
                bias, scale = fit_logistic(levels, p, n)
                xs = np.linspace(levels[ok].min(), levels[ok].max(), 300)
                ax.plot(xs, 1 / (1 + np.exp(-(xs - bias) / scale)), color=color, lw=1.4,
                        gid="fit")
        ax.axhline(0.5, color="0.8", lw=0.6, zorder=0)
        if levels.min() < 0 < levels.max():
            ax.axvline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(data["x_label"])
        ax.set_ylabel(data["y_label"])
        ax.set_title("psychometric curve")
        if by_name is not None:
            ax.legend(loc="best")
    return fig
