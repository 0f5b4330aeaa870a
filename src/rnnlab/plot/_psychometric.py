"""Psychometric curves for decision tasks."""

import jax
import numpy as np
import scipy.optimize

from ._style import format_condition, new_figure, paper_style


def psychometric_points(
    model, task, *, key, n_trials: int = 2000, condition: str = "signed_coherence",
    choice: int = 1, by: str | None = None,
) -> dict:
    """Choice fractions per condition value, from fresh trials of ``task`` run through ``model``.

    Trials are sampled from ``key`` and run with the model's own noise; ``task.decisions``
    gives each trial's decision. Trials whose decision is 0 (no choice / kept fixating) are
    left out of the fractions and counted in ``n_no_choice``.

    Returns a dict: ``groups`` (one per value of ``by``, or a single group ``None``), each
    ``{"x": [K] condition values, "p": [K] fraction choosing ``choice``, "n": [K] trials with a
    choice}``, and ``n_no_choice``.
    """
    from .._simulate import simulate

    if not hasattr(task, "decisions"):
        raise TypeError(
            f"psychometric curves need a decision task with a decisions() method (e.g. "
            f"perceptual_decision_making); {type(task).__name__} has none"
        )
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 2:
        raise ValueError(f"n_trials must be an integer >= 2, got {n_trials!r}")
    k_trials, k_net = jax.random.split(key)
    batch = task.sample_batch(k_trials, n_trials)
    for name in (condition, by):
        if name is not None and name not in batch.conditions:
            raise ValueError(
                f"{name!r} is not a condition of {type(task).__name__}; it has "
                f"{sorted(batch.conditions)}"
            )
    outputs = simulate(model, batch.inputs, key=k_net).outputs
    dec = np.asarray(task.decisions(outputs))
    x = np.round(np.asarray(batch.conditions[condition], float), 6)
    group_of = (np.zeros(len(x)) if by is None
                else np.round(np.asarray(batch.conditions[by], float), 6))
    made = dec != 0
    groups = {}
    for g in np.unique(group_of):
        sel = (group_of == g) & made
        xs = np.unique(x[group_of == g])
        n = np.array([np.sum(sel & (x == v)) for v in xs])
        k = np.array([np.sum(sel & (x == v) & (dec == choice)) for v in xs])
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        groups[None if by is None else g.item()] = {"x": xs, "p": p, "n": n}
    return {"groups": groups, "n_no_choice": int(np.sum(~made))}


def fit_logistic(x, p, n) -> tuple[float, float]:
    """Maximum-likelihood logistic P(x) = 1 / (1 + exp(-(x - bias) / scale)).

    Returns (bias, scale); binomial likelihood with ``n`` trials per point.
    """
    x, p, n = (np.asarray(a, float) for a in (x, p, n))
    ok = np.isfinite(p) & (n > 0)
    x, k, n = x[ok], p[ok] * n[ok], n[ok]
    span = max(np.ptp(x), 1e-6) if len(x) else 1.0

    def nll(theta):
        bias, log_scale = theta
        z = (x - bias) / np.exp(log_scale)
        # -log p = log(1 + e^-z), -log(1-p) = log(1 + e^z)
        return float(np.sum(k * np.logaddexp(0, -z) + (n - k) * np.logaddexp(0, z)))

    res = scipy.optimize.minimize(nll, x0=[0.0, np.log(span / 8)], method="Nelder-Mead",
                                  options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
    return float(res.x[0]), float(np.exp(res.x[1]))


def psychometric(
    model, task, *, key=None, n_trials: int = 2000, condition: str = "signed_coherence",
    choice: int = 1, by: str | None = None,
):
    """Psychometric curve: the fraction of choices for option ``choice`` against ``condition``.

    Points are the fractions (with binomial standard errors) over ``n_trials`` fresh trials;
    the curve is the maximum-likelihood logistic fit. With ``by`` (e.g. ``"context"``) one
    curve per value of that condition.

    Args:
        model: a trained network; task: a decision task with ``decisions(outputs)``.
        key: PRNG key for the trials and the network noise (default ``PRNGKey(0)``).
        n_trials: number of fresh trials. Default 2000.
        condition: the signed evidence condition on the x axis (percent coherence).
        choice: the decision value counted as "option 1" (1 for perceptual_decision_making,
            whose channel 1 is the positive-coherence side).

    Returns: the matplotlib Figure.
    """
    if key is None:
        key = jax.random.PRNGKey(0)
    data = psychometric_points(model, task, key=key, n_trials=n_trials, condition=condition,
                               choice=choice, by=by)
    with paper_style():
        fig, axes = new_figure(1, 1, figsize=(3.4, 2.8))
        ax = axes[0, 0]
        for i, (g, d) in enumerate(data["groups"].items()):
            color = "k" if g is None else f"C{i}"
            label = None if g is None else f"{by} {format_condition(g)}"
            x, p, n = d["x"], d["p"], d["n"]
            se = np.sqrt(np.clip(p * (1 - p), 0, None) / np.maximum(n, 1))
            ax.errorbar(x, p, yerr=se, fmt="o", color=color, ms=4, capsize=2, lw=1,
                        label=label)
            ok = np.isfinite(p)
            if ok.sum() >= 2 and 0 < np.nanmean(p) < 1:
                bias, scale = fit_logistic(x, p, n)
                xs = np.linspace(x.min(), x.max(), 300)
                ax.plot(xs, 1 / (1 + np.exp(-(xs - bias) / scale)), color=color, lw=1.4,
                        gid="fit")
        ax.axhline(0.5, color="0.8", lw=0.6, zorder=0)
        ax.axvline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(f"{condition.replace('_', ' ')} (%)" if "coherence" in condition
                      else condition.replace("_", " "))
        ax.set_ylabel(f"P(choice {choice})")
        ax.set_title("psychometric curve")
        if by is not None:
            ax.legend(loc="upper left")
    return fig
