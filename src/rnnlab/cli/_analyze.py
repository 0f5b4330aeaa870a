"""`rnnlab analyze RUN`: fixed and slow points per task input, PCA, topology and attractor
manifolds of a trained run."""

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
    """The constant inputs worth analysing for ``task``, named: the task's own
    ``task.fixed_point_inputs()`` (the constant input of each epoch with a neutral stimulus;
    zero input only where the task declares it, i.e. where the network receives it)."""
    named = task.fixed_point_inputs()
    if not named:
        raise CLIError(f"task {type(task).__name__} declares no fixed-point inputs; pass --inputs")
    out = []
    for name, vec in named.items():
        vec = [float(a) for a in list(vec)]
        if len(vec) != task.n_in:
            raise CLIError(f"task input {name!r} has {len(vec)} entries, the task has "
                           f"n_in={task.n_in}")
        out.append((str(name), vec))
    return out


def _stability_view(model) -> str:
    if not model.is_continuous:
        return "map"
    dt = getattr(model, "dt", None)
    return f"Euler map, dt={float(dt):g} ms" if dt is not None else "ODE"


def _tangent_in_view(model, m) -> dict:
    """The median tangent eigenvalue of manifold ``m`` in the system that runs (Euler-map
    multiplier mu = 1 + dt lambda for a CT-RNN with dt; the map's multiplier for maps; the
    ODE's lambda without dt), and the ODE's lambda for continuous-time models."""
    import numpy as np

    vals = np.asarray(m.tangent_eigenvalues, complex)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return {"tangent_eigenvalue": None}
    med = complex(np.median(vals.real), np.median(vals.imag))
    if not model.is_continuous:  # attractor_manifolds reports mu - 1 for maps
        mu = med + 1.0
        return {"tangent_eigenvalue": [mu.real, mu.imag], "tangent_view": "map multiplier mu"}
    dt = getattr(model, "dt", None)
    out = {"tangent_eigenvalue_ode": [med.real, med.imag]}
    if dt is None:
        out.update(tangent_eigenvalue=[med.real, med.imag], tangent_view="ODE lambda")
    else:
        mu = 1.0 + float(dt) * med
        out.update(tangent_eigenvalue=[mu.real, mu.imag],
                   tangent_view=f"Euler multiplier mu = 1 + dt lambda (dt={float(dt):g} ms)")
    return out


@app.command("analyze")
def analyze_cmd(
    run: Path = typer.Argument(..., help="A run directory made by `rnnlab train`."),
    inputs: Optional[str] = typer.Option(
        None, "--inputs", help="Constant inputs as JSON, e.g. '[[0,0,0],[1,0,0]]' "
        "(default: the task's own, `task.fixed_point_inputs()`)."
    ),
    n_initial: int = typer.Option(1024, "--n-initial", help="Candidate states (K)."),
    n_trials: int = typer.Option(128, "--n-trials", help="Trials simulated for candidates."),
    noise: float = typer.Option(0.0, "--noise", help="Std of noise added to candidates."),
    slow_tol: Optional[float] = typer.Option(
        None, "--slow-tol", help="Keep slow points with speed |F| below this (overrides the "
        "default rule: --slow-fraction of the trajectories' extent per trial)."
    ),
    slow_fraction: Optional[float] = typer.Option(
        None, "--slow-fraction", help="Slow points move less than this fraction of the task "
        "trajectories' extent over a trial (default 0.03)."
    ),
    no_slow: bool = typer.Option(False, "--no-slow", help="Search roots only (no slow points, "
                                 "no manifolds)."),
    n_slow_initial: int = typer.Option(
        256, "--n-slow-initial", help="Candidates (the first of the K) searched for slow points."
    ),
    tol: float = typer.Option(1e-10, "--tol", help="Speed |F| at which a point is a root."),
    n_components: int = typer.Option(3, "--n-components", help="PCA components to keep."),
    topology_starts: int = typer.Option(
        32, "--topology-starts", help="Perturbed runs per fixed point (slow points excluded)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Find the fixed and slow points of a trained run at each of its task's inputs, and write
    RUN/analysis/."""
    import jax
    import networkx as nx
    import numpy as np

    from ..analysis import (
        FixedPoints, attractor_manifolds, find_fixed_points, pca, sample_states,
        slow_point_tolerance,
    )
    from ..analysis._slow import DEFAULT_FRACTION
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
                    ("--n-slow-initial", n_slow_initial),
                    ("--n-components", n_components), ("--topology-starts", topology_starts)):
        if v < 1:
            raise CLIError(f"{name} must be a positive integer, got {v}")
    if not (np.isfinite(tol) and tol > 0):
        raise CLIError(f"--tol must be a positive number, got {tol}")
    if slow_tol is not None and not (np.isfinite(slow_tol) and slow_tol >= tol):
        raise CLIError(f"--slow-tol must be a number >= --tol ({tol}), got {slow_tol}")
    if slow_fraction is not None and not (np.isfinite(slow_fraction) and slow_fraction > 0):
        raise CLIError(f"--slow-fraction must be a positive number, got {slow_fraction}")
    if no_slow and (slow_tol is not None or slow_fraction is not None):
        raise CLIError("--no-slow cannot be combined with --slow-tol or --slow-fraction")
    if slow_tol is not None and slow_fraction is not None:
        raise CLIError("give either --slow-tol (a speed) or --slow-fraction (the rule), not both")
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
    # The slow-point tolerance: a speed that moves less than a small fraction of the task
    # trajectories' extent over one trial (or the user's own).
    if no_slow:
        slow = {"source": "--no-slow", "tol": None}
    elif slow_tol is not None:
        slow = {"source": "--slow-tol", "tol": float(slow_tol)}
    else:
        rule = slow_point_tolerance(
            model, traj, fraction=DEFAULT_FRACTION if slow_fraction is None else slow_fraction)
        slow = {"source": "rule", **rule.as_dict(), "tol": max(rule.tol, tol)}
    used_slow = slow["tol"]
    # Roots from every candidate (as with --no-slow); slow points from a subset: each slow
    # candidate stops where it first becomes slow, so it gives one point (and its
    # eigendecomposition) per candidate, and a few hundred cover a line or ring.
    slow_candidates = candidates[:min(n_slow_initial, n_initial)]
    parts = []
    for _, vec in named:
        part = find_fixed_points(model, np.asarray(vec), candidates, tol=tol)
        if used_slow is not None:
            found = find_fixed_points(model, np.asarray(vec), slow_candidates, tol=tol,
                                      slow_tol=used_slow)
            part = FixedPoints.concatenate([part, found[~np.asarray(found.converged)]])
        parts.append(part)
    fps = FixedPoints.concatenate(parts)
    n_comp = min(n_components, model.state_size)
    proj = pca(traj.states, n_comp)
    # Where the flow settles, among the roots (nodes keep their indices in fixed_points).
    graph = root_topology(model, fps, key=k_topo, n_starts=topology_starts)
    # Manifolds per input: slow points at different constant inputs belong to different
    # dynamical systems and must not be linked into one curve.
    manifolds = []
    if used_slow is not None:
        for (name, _), p in zip(named, parts):
            try:
                found = attractor_manifolds(p)
            except ValueError:  # too few points to search
                found = []
            manifolds.extend((name, m) for m in found)
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
    view = _stability_view(model)
    man_rows = [
        {"input": name, "kind": m.kind, "dimension": m.dimension,
         "n_points": int(m.states.shape[0]), "length": float(m.length),
         "near_zero_tangent": bool(m.near_zero_tangent), **_tangent_in_view(model, m)}
        for name, m in manifolds
    ]
    per_input = []
    for (name, vec), p in zip(named, parts):
        per_input.append({"name": name, "input": vec, **p.summary(),
                          "manifolds": sum(1 for n, _ in manifolds if n == name),
                          "manifold_list": [r for r in man_rows if r["input"] == name]})
    total = fps.summary()
    n_differ = int(total.get("views_differ", 0))
    dt = getattr(model, "dt", None) if model.is_continuous else None
    views_line = None
    if n_differ:
        views_line = (f"{n_differ} root{'s' if n_differ != 1 else ''} change stability between "
                      f"the ODE and the simulated Euler map at dt={float(dt):g} ms: the "
                      "network's function depends on its step size")
    summary = {
        "run": str(run),
        "n_initial": n_initial,
        "n_slow_initial": None if used_slow is None else min(n_slow_initial, n_initial),
        "tol": tol,
        "slow_tol": used_slow,
        "slow_tolerance": slow,
        "stability_view": view,
        "inputs": per_input,
        "total": total,
        "views_differ": n_differ,
        "views_differ_message": views_line,
        "pca_explained_variance_ratio": proj.explained_variance_ratio.tolist(),
        "manifolds": man_rows,
        "wall_time_s": elapsed,
    }
    atomic_write_json(out / "summary.json", summary)

    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"fixed points of {run} ({n_initial} candidates, {elapsed:.1f} s; stability of "
               f"the system that runs: {view}):")
    typer.echo(f"{'input':<28} {'points':>6} {'stable':>6} {'saddles (by index)':<22} "
               f"{'unstable':>8} {'marginal':>8} {'slow':>5} {'manifolds':>9}")
    for row in per_input:
        sad = ", ".join(f"{k}:{v}" for k, v in row["saddles_by_index"].items()) or "-"
        n_man = str(row["manifolds"]) if used_slow is not None else "-"
        typer.echo(
            f"{row['name'][:28]:<28} {row['n_points']:>6} {row['stable']:>6} "
            f"{str(row['saddle']) + ' (' + sad + ')':<22} {row['unstable']:>8} "
            f"{row['marginal']:>8} {row['slow']:>5} {n_man:>9}"
        )
    typer.echo("(stable, saddles, unstable, marginal: roots; slow: slow points, not counted "
               "as fixed points)")
    if slow["source"] == "rule":
        typer.echo(f"slow points: {slow['rule']}")
    elif slow["source"] == "--slow-tol":
        typer.echo(f"slow points: |F| < {used_slow:.3g} (--slow-tol)")
    else:
        typer.echo("slow points: not searched (--no-slow)")
    if used_slow is not None:
        typer.echo("attractor manifolds:" + ("" if man_rows else " none"))
        for r in man_rows:
            tan = r.get("tangent_eigenvalue")
            tan_text = "" if tan is None else (
                f", tangent eigenvalue {tan[0]:.4g}{tan[1]:+.2g}i"
                f" ({r['tangent_view'].split(' (')[0]})")
            typer.echo(f"  input {r['input']}: {r['kind']} ({r['n_points']} points, length "
                       f"{r['length']:.3g}, dimension {r['dimension']}{tan_text}"
                       f"{'' if r['near_zero_tangent'] else ', flow along it not near zero'})")
    if views_line:
        typer.echo(views_line)
    typer.echo(f"written to {out}/")
