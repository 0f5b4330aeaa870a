"""Everything the figures and the report show about one run directory, loaded once."""

import dataclasses
import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ._project import Projection
from ._style import primary_condition


@dataclasses.dataclass
class RunData:
    """A run directory's contents, ready to draw.

    Attributes: ``path``; ``config`` (config.json); ``history`` (history.jsonl entries);
    ``model``; ``task`` (None when the task is not a registered one); ``trials`` (a batch of
    fresh trials, noise as the task makes it), ``trajectory`` (the model run on them without
    recurrent noise); ``condition`` (the name of the condition trajectories are coloured by);
    ``fixed_points``, ``topology``, ``manifolds``, ``pca`` (the analysis' principal components,
    a `Projection` with at least 3 axes) from ``RUN/analysis/``, None when absent;
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
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def condition_values(self):
        if self.trials is None or self.condition is None:
            return None
        return np.asarray(self.trials.conditions[self.condition])


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def _task_from_config(config):
    from .. import tasks

    spec = config.get("task") or {}
    name = spec.get("name")
    if not name or name not in tasks.available():
        return None
    return tasks.make(name, **(spec.get("params") or {}))


def run_analysis(run: Path) -> str | None:
    """Run ``rnnlab analyze RUN`` in-process; returns None on success, else why it failed."""
    from ..cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(["analyze", str(run)])
        except SystemExit as e:  # pragma: no cover - main returns codes, but be safe
            rc = e.code
    if rc == 0:
        return None
    msg = (err.getvalue().strip() or out.getvalue().strip()).splitlines()
    return msg[-1] if msg else f"exit code {rc}"


def continuous_attractors(fixed_points) -> list:
    """The attractor manifolds among ``fixed_points`` that are continuous attractors: curves or
    surfaces of points whose flow along the manifold is (nearly) zero. Separate fixed points
    that merely lie close together (the corners and saddles of a flip-flop) are not kept.
    Points found at different constant inputs belong to different dynamical systems: each
    input's points are searched apart (``indices`` refer to ``fixed_points``)."""
    from ..analysis import attractor_manifolds

    inputs = np.asarray(fixed_points.inputs)
    if len(fixed_points) == 0:
        return []
    _, group = np.unique(inputs.reshape(len(fixed_points), -1), axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    out = []
    for g in np.unique(group):
        members = np.nonzero(group == g)[0]
        try:
            found = attractor_manifolds(fixed_points[members])
        except ValueError:
            continue
        out.extend(dataclasses.replace(m, indices=members[np.asarray(m.indices)])
                   for m in found if getattr(m, "near_zero_tangent", False))
    out.sort(key=lambda m: -m.states.shape[0])
    return out


def _load_analysis(data: RunData, *, seed: int) -> None:
    """Fixed points from ``RUN/analysis/fixed_points.safetensors``; the topology graph from
    ``topology.json`` (node-link JSON) when the analysis wrote one, else computed here
    (`rnnlab.analysis.topology` among the roots, ``PRNGKey(seed)``); continuous attractors
    among the points."""
    adir = data.path / "analysis"
    fp_path = adir / "fixed_points.safetensors"
    if not fp_path.is_file():
        data.notes.append(f"no fixed points ({fp_path} is missing)")
        return
    from .. import analysis

    data.fixed_points = analysis.FixedPoints.load(fp_path)
    if len(data.fixed_points) == 0:
        data.notes.append("the analysis found no fixed points")
        return
    topo_file = adir / "topology.json"
    if topo_file.is_file():
        import networkx as nx

        try:
            data.topology = nx.node_link_graph(_read_json(topo_file), directed=True,
                                               edges="edges")
        except (KeyError, TypeError, nx.NetworkXError) as e:
            data.notes.append(f"{topo_file} could not be read ({e})")
    elif getattr(data.fixed_points, "n_states", None) == data.model.state_size:
        from ..analysis._structure import root_topology

        data.topology = root_topology(data.model, data.fixed_points,
                                      key=jax.random.PRNGKey(seed))
    data.manifolds = continuous_attractors(data.fixed_points)
    pca_file = adir / "pca.safetensors"
    if pca_file.is_file():
        from ..io._safe import read_safetensors

        try:
            t, _ = read_safetensors(pca_file, kind="pca")
            if t["components"].shape[0] >= 3 and t["mean"].shape[0] == data.model.state_size:
                data.pca = Projection(np.asarray(t["mean"], float),
                                      np.asarray(t["components"], float),
                                      np.asarray(t["explained_variance_ratio"], float))
        except (KeyError, ValueError) as e:
            data.notes.append(f"{pca_file} could not be read ({e})")


def load_run(
    run: str | os.PathLike, *, n_trials: int = 64, seed: int = 0, analyze: bool = True,
) -> RunData:
    """Load a run directory (``rnnlab train``'s output) for plotting.

    Args:
        run: the run directory.
        n_trials: fresh trials (drawn with ``PRNGKey(seed)``) to simulate for the state space.
        analyze: run ``rnnlab analyze RUN`` first when ``RUN/analysis/`` is missing.
    """
    from ..io import load
    from ._training import read_history

    path = Path(run)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no config.json)")
    model_file = path / "model.safetensors"
    if not model_file.is_file():
        raise FileNotFoundError(f"{model_file} is missing: the run has no trained model yet")
    config = _read_json(path / "config.json")
    history = read_history(path) if (path / "history.jsonl").is_file() else []
    data = RunData(path=path, config=config, history=history, model=load(model_file),
                   task=_task_from_config(config))
    if data.task is None:
        data.notes.append("the run's task is not a registered task: no trials are shown")
    else:
        from .._simulate import simulate

        data.trials = data.task.sample_batch(jax.random.PRNGKey(seed), n_trials)
        data.trajectory = simulate(data.model, data.trials.inputs)
        data.condition = primary_condition(
            {k: np.asarray(v) for k, v in data.trials.conditions.items()}
        )
    if analyze and not (path / "analysis").is_dir():
        why = run_analysis(path)
        if why is not None:
            data.notes.append(f"the analysis could not be run: {why}")
    if (path / "analysis").is_dir():
        _load_analysis(data, seed=seed)
    elif analyze is False:
        data.notes.append(f"no fixed points ({path / 'analysis'} is missing; "
                          "run `rnnlab analyze RUN` to make it)")
    return data
