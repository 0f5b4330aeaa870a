"""`rnnlab plot RUN --out DIR`: the static figures of a run as PNG and SVG."""

from pathlib import Path
from typing import Optional

import typer

from ._app import CLIError, app


def write_run_figures(run: Path, out: Path, *, analyze: bool = True, n_trials: int = 64,
                      seed: int = 0, analysis_dir: Path | None = None) -> list[Path]:
    """Draw every figure the run supports into ``out`` (NAME.png and NAME.svg each)."""
    from ..plot import (
        connectivity, load_run, eigenspectra, psychometric, save_figure, state_space, topology,
        training_curves, trials,
    )

    data = load_run(run, n_trials=n_trials, seed=seed, analyze=analyze,
                    analysis_dir=analysis_dir)
    written: list[Path] = []

    def emit(name, fig):
        written.extend(save_figure(fig, out / name))

    if data.history:
        target = (data.config.get("training") or {}).get("target_accuracy")
        emit("training", training_curves(data.history, target_accuracy=target))
    if data.task is not None:
        import jax

        emit("trials", trials(data.task, data.model, key=jax.random.PRNGKey(seed + 1)))
        kw = {"conditions": data.condition_values, "condition_name": data.condition_title,
              "value_names": data.condition_value_names,
              "fixed_points": data.fixed_points, "manifolds": data.manifolds,
              "inputs": data.analysis.inputs if data.analysis is not None else None,
              "pca": data.pca}
        emit("state_space", state_space(data.trajectory, **kw))
        emit("state_space_3d", state_space(data.trajectory, n_components=3, **kw))
        if data.task.has_psychometric:
            emit("psychometric", psychometric(data.model, data.task))
    if data.fixed_points is not None and len(data.fixed_points):
        emit("eigenspectra", eigenspectra(data.fixed_points))
    if data.topology is not None and data.topology.number_of_nodes():
        emit("topology", topology(data.topology, fixed_points=data.fixed_points))
    try:
        emit("connectivity", connectivity(data.model))
    except (TypeError, ValueError) as e:
        data.notes.append(str(e))
    for note in data.notes:
        typer.echo(f"note: {note}", err=True)
    return written


@app.command("plot")
def plot_cmd(
    run: Path = typer.Argument(..., help="A run directory made by `rnnlab train`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default RUN/figures)."),
    analyze: bool = typer.Option(
        True, "--analyze/--no-analyze",
        help="Run `rnnlab analyze RUN` first when RUN/analysis/ is missing.",
    ),
    n_trials: int = typer.Option(64, "--n-trials", help="Fresh trials in the state space."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fresh trials."),
    analysis: Optional[Path] = typer.Option(
        None, "--analysis", help="Draw the analysis in this folder (rnnlab analyze --out) "
        "instead of RUN/analysis/."
    ),
):
    """Write the static figures of a run (PNG and SVG): trials, training curves, state space
    with fixed points, eigen-spectra, connectivity, topology, psychometric curve."""
    from .._validate import positive_int
    from ..figdata import require_matplotlib

    try:
        positive_int("--n-trials", n_trials)
    except ValueError as e:
        raise CLIError(str(e)) from None
    try:
        require_matplotlib()
    except ImportError as e:
        raise CLIError(str(e)) from None
    import matplotlib

    matplotlib.use("Agg", force=True)
    out = Path(out) if out is not None else Path(run) / "figures"
    written = write_run_figures(Path(run), out, analyze=analyze, n_trials=n_trials, seed=seed,
                                analysis_dir=analysis)
    names = sorted({p.stem for p in written})
    typer.echo(f"wrote {len(written)} files to {out}: {', '.join(names)}")
