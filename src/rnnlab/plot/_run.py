"""Everything the figures and the report show about one run directory, loaded once."""

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..figdata import Projection, primary_condition


@dataclasses.dataclass
class RunData:
    """A run directory's contents, ready to draw.

    Attributes: ``path``; ``config`` (config.json); ``history`` (history.jsonl entries);
    ``model``; ``task`` (None when the task is not a registered one); ``trials`` (a batch of
    fresh trials, noise as the task makes it), ``trajectory`` (the model run on them without
    recurrent noise); ``condition`` (the name of the condition trajectories are coloured by);
    ``fixed_points``, ``topology``, ``manifolds``, ``pca`` (the analysis' principal components,
    a `Projection` with at least 3 axes) from ``RUN/analysis/``, None when absent;
    ``analysis``: the `rnnlab.runs.RunAnalysis` they come from;
    ``notes``: what could not be loaded, one line each.
    """

    path: Path
    config: dict[str, Any]
    history: list[dict[str, Any]]
    model: Any
    task: Any
    trials: Any = None
    trajectory: Any = None
    condition: str | None = None
    fixed_points: Any = None
    topology: Any = None
    manifolds: Any = None
    pca: Any = None
    analysis: Any = None
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def condition_title(self) -> str | None:
        """The condition's name in the task's own words (its axis label), for legends."""
        if self.condition is None:
            return None
        label = getattr(self.task, "condition_label", None)
        return label(self.condition) if callable(label) else self.condition

    @property
    def condition_value_names(self) -> dict[int, str] | None:
        """Names of the condition's values where the task gives them (``group_names`` of its
        psychometric grouping, e.g. ``{0: "motion context", 1: "colour context"}``)."""
        if self.task is None or self.condition is None:
            return None
        if self.condition == getattr(self.task, "psychometric_by", None):
            return dict(getattr(self.task, "group_names", {}) or {}) or None
        return None

    @property
    def condition_values(self):
        if self.trials is None or self.condition is None:
            return None
        return np.asarray(self.trials.conditions[self.condition])


def continuous_attractors(fixed_points) -> list:
    """The attractor manifolds among ``fixed_points`` that are continuous attractors: curves or
    surfaces of points whose flow along the manifold is (nearly) zero, largest first. Separate
    fixed points that merely lie close together (the corners and saddles of a flip-flop) are
    not kept. Points found at different constant inputs belong to different dynamical systems:
    each input's points are searched apart (``indices`` refer to ``fixed_points``)."""
    from ..runs import manifolds_per_input

    out = [m for _, m in manifolds_per_input(fixed_points) if m.near_zero_tangent]
    out.sort(key=lambda m: -m.states.shape[0])
    return out


def _load_analysis(data: RunData, analysis) -> None:
    """The saved analysis' fixed points, topology, continuous attractors and principal
    components, into ``data``."""
    data.analysis = analysis
    data.fixed_points = analysis.fixed_points
    if len(data.fixed_points) == 0:
        data.notes.append("the analysis found no fixed points")
        return
    data.topology = analysis.topology
    if data.topology is None and getattr(data.fixed_points, "n_states", None) == \
            data.model.state_size:
        import jax

        from ..analysis._structure import root_topology

        data.topology = root_topology(data.model, data.fixed_points, key=jax.random.PRNGKey(0))
    data.manifolds = analysis.continuous_attractors
    p = analysis.pca
    if p is not None and p.components.shape[0] >= 3 and p.mean.shape[0] == data.model.state_size:
        data.pca = Projection(np.asarray(p.mean, float), np.asarray(p.components, float),
                              np.asarray(p.explained_variance_ratio, float))


def describe_analysis(analysis, where) -> str:
    """One line saying which analysis is drawn: its folder and settings."""
    s = analysis.summary
    settings = s.get("settings") or {}
    names = ", ".join(analysis.input_names) or "?"
    slow = s.get("slow_tolerance") or {}
    slow_text = {"rule": "slow points by the default rule", "slow_tol": f"slow points |F| < "
                 f"{s.get('slow_tol')}", "none": "no slow points"}.get(
        slow.get("source"), "slow points as recorded")
    seed = settings.get("seed", "?")
    return (f"drawn from the analysis in {where} ({s.get('n_initial', '?')} candidates per "
            f"input, inputs: {names}; {slow_text}; seed {seed})")


def load_run(
    run: str | os.PathLike, *, n_trials: int = 64, seed: int = 0, analyze: bool = True,
    analysis_dir: str | os.PathLike | None = None,
) -> RunData:
    """Load a run directory (``rnnlab train``'s output) for plotting, through
    `rnnlab.runs.Run`.

    Args:
        run: the run directory.
        n_trials: fresh trials (drawn with ``PRNGKey(seed)``) to simulate for the state space.
        analyze: run `rnnlab.runs.analyze_run` (defaults) first when ``RUN/analysis/`` is
            missing.
        analysis_dir: draw the analysis saved there (``rnnlab analyze --out DIR``) instead of
            ``RUN/analysis/``.
    """
    from ..runs import Run, RunAnalysis, RunError, analyze_run

    the_run = Run.open(run)
    data = RunData(path=the_run.path, config=the_run.config, history=the_run.history,
                   model=the_run.model, task=the_run.task)
    if data.task is None:
        data.notes.append("the run's task is not a registered task: no trials are shown")
    else:
        data.trials, data.trajectory = the_run.sample_trials(n_trials, seed=seed)
        data.condition = primary_condition(
            {k: np.asarray(v) for k, v in data.trials.conditions.items()}
        )
    analysis = None
    where = the_run.analysis_dir if analysis_dir is None else Path(analysis_dir)
    try:
        if analysis_dir is None:
            analysis = the_run.analysis
        else:
            analysis = RunAnalysis.load(where)
    except (RunError, ValueError) as e:
        data.notes.append(f"the saved analysis could not be read: {e}")
        if analysis_dir is not None:
            raise
    if analysis is None and analyze:
        try:
            analysis = analyze_run(the_run)
        except (RunError, ValueError) as e:
            data.notes.append(f"the analysis could not be run: {e}")
    if analysis is not None:
        data.notes.append(describe_analysis(analysis, where))
        _load_analysis(data, analysis)
    elif not analyze:
        data.notes.append(f"no fixed points ({the_run.analysis_dir} is missing; "
                          "run `rnnlab analyze RUN` to make it)")
    return data
