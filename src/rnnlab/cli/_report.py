"""`rnnlab report RUN`: the interactive self-contained HTML report."""

from pathlib import Path
from typing import Optional

import typer

from ._app import CLIError, app


@app.command("report")
def report_cmd(
    run: Path = typer.Argument(..., help="A run directory made by `rnnlab train`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default RUN/report.html)."),
    analyze: bool = typer.Option(
        True, "--analyze/--no-analyze",
        help="Run `rnnlab analyze RUN` first when RUN/analysis/ is missing.",
    ),
    n_trials: int = typer.Option(64, "--n-trials", help="Fresh trials in the state space."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fresh trials."),
    analysis: Optional[Path] = typer.Option(
        None, "--analysis", help="Show the analysis in this folder (rnnlab analyze --out) "
        "instead of RUN/analysis/."
    ),
):
    """Write RUN/report.html: one file that opens offline (plotly inlined), with the run's
    configuration, training curves, trials, a 3D state space with fixed points, eigen-spectra,
    connectivity, the fixed-point topology and, for decision tasks, a psychometric curve."""
    from .._validate import positive_int
    from ..figdata import require_plotly
    from ..report import write_report

    try:
        positive_int("--n-trials", n_trials)
    except ValueError as e:
        raise CLIError(str(e)) from None
    try:
        require_plotly()
    except ImportError as e:
        raise CLIError(str(e)) from None
    path = write_report(run, out=out, analyze=analyze, n_trials=n_trials, seed=seed,
                        analysis_dir=analysis)
    size = path.stat().st_size / 1e6
    typer.echo(f"wrote {path} ({size:.1f} MB)")
