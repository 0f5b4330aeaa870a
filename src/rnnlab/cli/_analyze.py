"""`rnnlab analyze RUN`: fixed and slow points per task input, PCA, topology and attractor
manifolds of a trained run."""

import json
from pathlib import Path
from typing import Optional

import typer

from ._app import CLIError, app


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


def _check_analysis_memory(the_run, n_initial, n_trials, topology_starts, n_inputs) -> None:
    """Refuse, before the search allocates anything, an analysis that would not fit in memory
    (the estimate and the machine's memory in the message)."""
    from ..io._resources import analysis_bytes, check_memory

    model = the_run.model
    n = model.state_size
    task = the_run.task
    n_steps = int(getattr(task, "n_steps", 1)) if task is not None else 1
    need = (analysis_bytes(n, n_initial, n_inputs)
            + 4.0 * 4 * n_trials * n_steps * (n + model.n_in)  # candidate trajectories
            + 8.0 * 4 * topology_starts * min(n_initial, 4096) * n)  # topology runs
    check_memory(need, f"analysing with {n_initial} candidates (--n-initial) from {n_trials} "
                 f"trials (--n-trials) of a {n}-unit network",
                 hint="lower --n-initial or --n-trials")


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
    out_dir: Optional[Path] = typer.Option(
        None, "--out", help="Write the analysis here (default RUN/analysis/)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an earlier analysis made with other settings."
    ),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", help="One line per phase on stderr."
    ),
):
    """Find the fixed and slow points of a trained run at each of its task's inputs, and write
    RUN/analysis/."""
    import numpy as np

    from ..runs import Run, analyze_run

    for name, val in (("--n-initial", n_initial), ("--n-trials", n_trials),
                      ("--n-slow-initial", n_slow_initial),
                      ("--n-components", n_components), ("--topology-starts", topology_starts)):
        if val < 1:
            raise CLIError(f"{name} must be a positive integer, got {val}")
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
    the_run = Run.open(run)
    vectors = None if inputs is None else _parse_inputs(inputs, the_run.model.n_in)
    _check_analysis_memory(the_run, n_initial, n_trials, topology_starts,
                           1 if vectors is None else len(vectors))
    result = analyze_run(
        the_run, inputs=vectors, n_initial=n_initial, n_trials=n_trials, noise=noise,
        slow=not no_slow, slow_tol=slow_tol, slow_fraction=slow_fraction,
        n_slow_initial=n_slow_initial, tol=tol, n_components=n_components,
        topology_starts=topology_starts, seed=seed, out=out_dir, force=force,
        progress=progress,
    )
    summary = result.summary
    out = the_run.analysis_dir if out_dir is None else out_dir
    per_input = summary["inputs"]
    man_rows = summary["manifolds"]
    slow = summary["slow_tolerance"]
    used_slow = summary["slow_tol"]
    view = summary["stability_view"]
    elapsed = summary["wall_time_s"]
    views_line = summary["views_differ_message"]
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
    elif slow["source"] == "slow_tol":
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
