"""Figures and report of a trained run: time to draw, and the size of the one-file report.

Trains the README's 3-bit flip-flop run (64 units, seed 0) into a temporary folder, runs
`rnnlab analyze` on it, then times (median of --repeats, after one warm-up):
- `rnnlab plot` (all static figures as PNG + SVG, the analysis already on disk);
- `rnnlab report` (the self-contained HTML);
and compares the report's size with the baseline a user gets from plotly alone: one
self-contained HTML file per figure (`fig.write_html(include_plotlyjs=True)`), each carrying its
own copy of plotly.js.

    python benchmarks/report.py [--repeats 3] [--no-write]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import rnnlab as rl  # noqa: E402
from _results import write_section  # noqa: E402
from rnnlab.cli import main  # noqa: E402


def timed(fn, repeats):
    fn()  # warm-up (compilation, imports)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main_(repeats: int, write: bool) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="rnnlab-report-bench-"))
    run = tmp / "flipflop"
    t0 = time.perf_counter()
    assert main(["train", "flipflop", "--out", str(run), "--no-progress"]) == 0
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert main(["analyze", str(run)]) == 0
    t_analyze = time.perf_counter() - t0

    def plot():
        assert main(["plot", str(run), "--out", str(tmp / "figs")]) == 0

    def report():
        assert main(["report", str(run)]) == 0

    t_plot = timed(plot, repeats)
    t_report = timed(report, repeats)
    n_files = len(list((tmp / "figs").iterdir()))
    size = (run / "report.html").stat().st_size

    # baseline: plotly alone, one self-contained file per interactive figure of the report
    from rnnlab.plot import load_run
    from rnnlab.report import _figures as F

    data = load_run(run, analyze=False)
    figs = [F.training_figure(data.history),
            F.trials_figure(data.task, data.model,
                            data.task.sample_batch(jax.random.PRNGKey(1), 3)),
            F.state_space_figure(data.trajectory.states, data.condition_values, data.condition,
                                 data.fixed_points, n_components=3, pca=data.pca),
            F.spectra_figure(data.fixed_points), F.connectivity_figure(data.model),
            F.topology_figure(data.topology, data.fixed_points)]
    base = 0
    for i, f in enumerate(figs):
        path = tmp / f"fig{i}.html"
        f.write_html(path, include_plotlyjs=True)
        base += path.stat().st_size

    body = f"""
Trained 3-bit flip-flop run (`rnnlab train flipflop`, 64 units; training {t_train:.1f} s,
`rnnlab analyze` {t_analyze:.1f} s: {len(data.fixed_points)} fixed points). Median of
{repeats} after a warm-up, in-process CLI calls. The machine was shared with other jobs
(load average above the core count), so times are upper bounds.

| step | wall time | output |
|---|---|---|
| `rnnlab plot RUN` (7 figures, PNG + SVG) | {t_plot:.2f} s | {n_files} files |
| `rnnlab report RUN` (analysis on disk) | {t_report:.2f} s | one file, {size / 1e6:.2f} MB |
| baseline: plotly `write_html` per figure ({len(figs)} figures) | | {len(figs)} files, {base / 1e6:.2f} MB |

The report inlines plotly.js once ({size / 1e6:.1f} MB in one file against {base / 1e6:.1f} MB
for the same figures as separate self-contained files) and forbids network requests by its
Content-Security-Policy.
"""
    if write:
        write_section("Figures and HTML report", body)
    return body


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    print(main_(args.repeats, not args.no_write))
