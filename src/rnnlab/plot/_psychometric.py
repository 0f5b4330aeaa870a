"""Psychometric curves for decision tasks."""

from ..figdata import psychometric_curves
from ._style import new_figure, paper_style


def psychometric(
    model, task, *, key=None, n_trials: int = 2000, x: str | None = None, by: str | None = None,
    bins: int | None = None,
):
    """Psychometric curve: the fraction of trials with one choice against a condition.

    The curves are `rnnlab.figdata.psychometric_curves`: the fractions from
    `rnnlab.tasks.psychometric` (``n_trials`` fresh trials, the network's own noise on): points with binomial standard errors, and the maximum-likelihood
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
    curves = psychometric_curves(model, task, key=key, n_trials=n_trials, x=x, by=by,
                                 bins=bins)
    se = curves.standard_errors
    with paper_style():
        fig, axes = new_figure(1, 1, figsize=(3.6, 2.9))
        ax = axes[0, 0]
        for i in range(len(curves)):
            color = "k" if len(curves) == 1 else f"C{i}"
            label = curves.group_labels[i] if curves.split else None
            ax.errorbar(curves.x, curves.p_choice[i], yerr=se[i], fmt="o", color=color, ms=4,
                        capsize=2, lw=1, label=label, gid="points")
            fit = curves.fit_curve(i)
            if fit is not None:
                ax.plot(*fit, color=color, lw=1.4, gid="fit")
        ax.axhline(0.5, color="0.8", lw=0.6, zorder=0)
        if curves.x.min() < 0 < curves.x.max():
            ax.axvline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(curves.x_label)
        ax.set_ylabel(curves.y_label)
        ax.set_title("psychometric curve")
        if curves.split:
            ax.legend(loc="best")
    return fig
