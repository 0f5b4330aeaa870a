"""`rnnlab analyze RUN`: fixed points, PCA, topology and attractor manifolds of a trained run."""

import json
import time
from pathlib import Path
from typing import Optional

import typer

from ._app import CLIError, app
from ._common import read_run_config, task_from_config


def _parse_inputs(text: str, n_in: int) -> list[list[float]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise CLIError(
            f"--inputs {text!r} is not JSON; write a list of input vectors, e.g. '[[0, 0, 0]]'"
        ) from None
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        value = [value]
    ok = isinstance(value, list) and value and all(
        isinstance(v, list) and len(v) == n_in and all(isinstance(a, (int, float)) for a in v)
        for v in value
    )
    if not ok:
        raise CLIError(f"--inputs must be a list of vectors of length n_in={n_in}, got {text!r}")
    return [[float(a) for a in v] for v in value]


def task_inputs(task) -> list[tuple[str, list[float]]]:
    """The constant inputs worth analysing for ``task``: zero input always, plus the task's own
    (a task may define ``fixed_point_inputs() -> dict[name, vector]``); for the perceptual
    decision task the fixation + zero-coherence stimulus input; for the context-dependent
    decision task each context cue with zero-coherence stimuli (Mante et al. 2013 analyse the
    dynamics per context); for the sine-wave generator the input levels of its lowest, middle
    and highest frequency."""
    out = [("zero", [0.0] * task.n_in)]
    own = getattr(task, "fixed_point_inputs", None)
    kind = type(task).__name__
    if callable(own):
        for name, vec in own().items():
            out.append((str(name), [float(a) for a in vec]))
    elif kind == "PerceptualDecisionMaking":
        out.append(("fixation+stimulus(coh=0)", [1.0, 0.5, 0.5]))
    elif kind == "ContextDecisionMaking":
        # inputs: (motion cue, colour cue, motion R, motion L, colour R, colour L); a zero
        # coherence puts 0.5 on both channels of a modality
        out.append(("motion context(coh=0)", [1.0, 0.0, 0.5, 0.5, 0.5, 0.5]))
        out.append(("colour context(coh=0)", [0.0, 1.0, 0.5, 0.5, 0.5, 0.5]))
    elif kind == "SineWave":
        # the input level that sets the frequency: lowest, middle and highest trained one
        # (each should hold an unstable point with a complex pair inside its limit cycle)
        for w in sorted({task.w_min, 0.5 * (task.w_min + task.w_max), task.w_max}):
            out.append((f"frequency w={w:.3g}", [float(task.input_level(w))]))
    return out


@app.command("analyze")
def analyze_cmd(
    run: Path = typer.Argument(..., help="A run directory made by `rnnlab train`."),
    inputs: Optional[str] = typer.Option(
        None, "--inputs", help="Constant inputs as JSON, e.g. '[[0,0,0],[1,0,0]]' "
        "(default: zero input, plus the task's stimulus inputs)."
    ),
    n_initial: int = typer.Option(1024, "--n-initial", help="Candidate states (K)."),
    n_trials: int = typer.Option(128, "--n-trials", help="Trials simulated for candidates."),
    noise: float = typer.Option(0.0, "--noise", help="Std of noise added to candidates."),
    slow_tol: Optional[float] = typer.Option(
        None, "--slow-tol", help="Also keep slow points with speed |F| below this."
    ),
    tol: float = typer.Option(1e-10, "--tol", help="Speed |F| at which a point is a root."),
    n_components: int = typer.Option(3, "--n-components", help="PCA components to keep."),
    topology_starts: int = typer.Option(
        32, "--topology-starts", help="Perturbed runs per fixed point (slow points excluded)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Find fixed/slow points of a trained run and write RUN/analysis/."""
    import jax
    import networkx as nx
    import numpy as np

    from ..analysis import (
        FixedPoints, attractor_manifolds, find_fixed_points, pca, sample_states,
    )
    from ..analysis._structure import root_topology
    from .._simulate import simulate
    from ..io import load
    from ..io._safe import atomic_write_json, write_safetensors

    config = read_run_config(run)
    task = task_from_config(config)
    model_path = Path(run) / "model.safetensors"
    if not model_path.is_file():
        raise CLIError(f"{run} has no model.safetensors (has training finished?)")
    model = load(model_path)
    for name, v in (("--n-initial", n_initial), ("--n-trials", n_trials),
                    ("--n-components", n_components), ("--topology-starts", topology_starts)):
        if v < 1:
            raise CLIError(f"{name} must be a positive integer, got {v}")
    if not (np.isfinite(tol) and tol > 0):
        raise CLIError(f"--tol must be a positive number, got {tol}")
    if slow_tol is not None and not (np.isfinite(slow_tol) and slow_tol >= tol):
        raise CLIError(f"--slow-tol must be a number >= --tol ({tol}), got {slow_tol}")
    if not (np.isfinite(noise) and noise >= 0):
        raise CLIError(f"--noise must be a non-negative number, got {noise}")
    if inputs is None:
        named = task_inputs(task)
    else:
        named = [(f"input{i}", v) for i, v in enumerate(_parse_inputs(inputs, model.n_in))]

    key = jax.random.PRNGKey(seed)
    k_trials, k_samp, k_topo = jax.random.split(key, 3)
    t0 = time.perf_counter()
    trials = task.sample_batch(k_trials, n_trials)
    traj = simulate(model, trials.inputs)
    candidates = sample_states(traj, n_initial, key=k_samp, noise_std=noise)
    parts = []
    for _, vec in named:
        parts.append(find_fixed_points(model, np.asarray(vec), candidates, tol=tol,
                                       slow_tol=slow_tol))
    fps = FixedPoints.concatenate(parts)
    n_comp = min(n_components, model.state_size)
    proj = pca(traj.states, n_comp)
    # Where the flow settles, among the roots (nodes keep their indices in fixed_points).
    graph = root_topology(model, fps, key=k_topo, n_starts=topology_starts)
    # Manifolds per input: slow points at different constant inputs belong to different
    # dynamical systems and must not be linked into one curve.
    manifolds = []
    if slow_tol is not None:
        for (name, _), p in zip(named, parts):
            manifolds.extend((name, m) for m in attractor_manifolds(p))
    elapsed = time.perf_counter() - t0

    out = Path(run) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    fps.save(out / "fixed_points.safetensors")
    write_safetensors(
        out / "pca.safetensors",
        {
            "mean": proj.mean, "components": proj.components,
            "explained_variance": proj.explained_variance,
            "explained_variance_ratio": proj.explained_variance_ratio,
            "fixed_points": proj.transform(np.asarray(fps.states)),
        },
        {"kind": "pca", "total_variance": proj.total_variance},
    )
    atomic_write_json(out / "topology.json", nx.node_link_data(graph, edges="edges"))
    per_input = []
    for (name, vec), p in zip(named, parts):
        per_input.append({"name": name, "input": vec, **p.summary(),
                          "manifolds": sum(1 for n, _ in manifolds if n == name)})
    summary = {
        "run": str(run),
        "n_initial": n_initial,
        "tol": tol,
        "slow_tol": slow_tol,
        "inputs": per_input,
        "total": fps.summary(),
        "pca_explained_variance_ratio": proj.explained_variance_ratio.tolist(),
        "manifolds": [
            {"input": name, "kind": m.kind, "dimension": m.dimension,
             "n_points": int(m.states.shape[0]), "length": m.length,
             "near_zero_tangent": m.near_zero_tangent}
            for name, m in manifolds
        ],
        "wall_time_s": elapsed,
    }
    atomic_write_json(out / "summary.json", summary)

    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"fixed points of {run} ({n_initial} candidates, {elapsed:.1f} s):")
    typer.echo(f"{'input':<28} {'points':>6} {'stable':>6} {'saddles (by index)':<22} "
               f"{'unstable':>8} {'marginal':>8} {'slow':>5} {'manifolds':>9}")
    for row in per_input:
        sad = ", ".join(f"{k}:{v}" for k, v in row["saddles_by_index"].items()) or "-"
        n_man = str(row["manifolds"]) if slow_tol is not None else "-"
        typer.echo(
            f"{row['name'][:28]:<28} {row['n_points']:>6} {row['stable']:>6} "
            f"{str(row['saddle']) + ' (' + sad + ')':<22} {row['unstable']:>8} "
            f"{row['marginal']:>8} {row['slow']:>5} {n_man:>9}"
        )
    if slow_tol is not None:
        kinds = ", ".join(f"{m.kind} ({m.states.shape[0]} points, input {name})"
                          for name, m in manifolds) or "none"
        typer.echo(f"attractor manifolds: {kinds}")
    else:
        typer.echo("attractor manifolds: not searched (they are made of slow points: pass "
                   "--slow-tol)")
    typer.echo(f"written to {out}/")
