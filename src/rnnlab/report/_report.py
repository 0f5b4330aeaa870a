"""`write_report`: one self-contained HTML file describing a run."""

import base64
import hashlib
import html
import json
import os
import re
from pathlib import Path

import numpy as np

from .._validate import positive_int
from ..io._safe import atomic_write_text
from ..figdata import require_plotly, sample_trials
from ..plot import RunData, load_run

# Everything the page needs is inline; this policy makes any browser refuse network requests
# even if some inlined code tried one, and run no script but rnnlab's own: each inline script
# is allowed by its SHA-256 hash (no 'unsafe-inline', no 'unsafe-eval'), so a string that
# slipped into the page unescaped could not run.
CSP_TEMPLATE = ("default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
                "img-src data: blob:; font-src data:; worker-src blob:; connect-src 'none'; "
                "base-uri 'none'; form-action 'none'")
_SCRIPT = re.compile(r"<script\b[^>]*>(.*?)</script>", re.S)


def content_security_policy(page: str) -> str:
    """The page's Content-Security-Policy: the hashes of every inline script of ``page``."""
    hashes = sorted({
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1).encode("utf-8")).digest())
        .decode("ascii") + "'" for m in _SCRIPT.finditer(page)})
    return CSP_TEMPLATE.format(hashes=" ".join(hashes) or "'none'")

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "showSendToCloud": False,
                 "toImageButtonOptions": {"format": "png", "scale": 2}}

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #1f3b73; color: white; padding: 18px 32px; }
header h1 { margin: 0 0 6px 0; font-size: 24px; }
header p { margin: 0; opacity: 0.9; }
nav { padding: 8px 32px; background: #e8ecf4; font-size: 14px; }
nav a { margin-right: 16px; color: #1f3b73; text-decoration: none; }
main { padding: 8px 32px 40px 32px; max-width: 1400px; }
section { background: white; border: 1px solid #e0e0e0; border-radius: 6px; margin: 18px 0;
          padding: 12px 20px; }
h2 { font-size: 19px; margin: 6px 0 10px 0; color: #1f3b73; }
table.kv { border-collapse: collapse; font-size: 14px; }
table.kv td { padding: 3px 14px 3px 0; vertical-align: top; }
table.kv td:first-child { color: #555; }
pre { background: #f4f4f4; padding: 10px; overflow-x: auto; font-size: 12px; }
p.note { color: #8a4b00; font-size: 14px; }
p.hint { color: #555; font-size: 13px; margin: 4px 0; }
"""


def _plot_div(fig, div_id: str) -> str:
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                       config=PLOTLY_CONFIG, validate=True)


def _kv_table(rows) -> str:
    cells = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f'<table class="kv">{cells}</table>'


def _summary_rows(data: RunData):
    cfg = data.config
    model_cfg = (cfg.get("model") or {})
    task_cfg = (cfg.get("task") or {})
    rows = [("task", task_cfg.get("name", "?"))]
    m = data.model
    rows.append(("model", f"{type(m).__name__}: {m.n_in} inputs, {m.n_hidden} units, "
                          f"{m.n_out} outputs"))
    for k in ("activation_name", "form", "dale", "dt"):
        if hasattr(m, k):
            rows.append((k.replace("_name", ""), getattr(m, k)))
    if hasattr(m, "tau"):
        tau = np.asarray(m.tau)
        rows.append(("tau", f"{tau.min():g}" if np.ptp(tau) == 0 else
                     f"{tau.min():g} to {tau.max():g}"))
    if data.history:
        last = data.history[-1]
        rows.append(("training steps", last.get("step")))
        for k in ("loss", "accuracy", "r2"):
            if k in last:
                rows.append((f"final {k}", f"{last[k]:.4g}"))
    if "seed" in cfg:
        rows.append(("seed", cfg["seed"]))
    if model_cfg.get("class"):
        rows.append(("saved class", model_cfg.get("class")))
    return rows


def _fixed_point_rows(fp):
    s = fp.summary()
    return [("fixed points", s["n_points"]),
            *[(k, s[k]) for k in ("stable", "saddle", "unstable", "marginal")],
            ("converged (roots)", s["converged"]), ("slow points", s["slow"]),
            ("max speed |F|", f"{s['max_speed']:.2e}"),
            ("time", "continuous (stability: Re λ < 0)" if s["is_continuous"]
             else "discrete map (stability: |λ| < 1)")]


def build_report_html(data: RunData) -> str:
    """The report page for loaded run data (see `write_report`)."""
    require_plotly()
    from plotly.offline import get_plotlyjs

    from . import _figures as F

    sections: list[tuple[str, str, str]] = []  # (anchor, title, body)
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in data.notes)
    summary = _kv_table(_summary_rows(data))
    if data.fixed_points is not None:
        summary += "<h3>Fixed points</h3>" + _kv_table(_fixed_point_rows(data.fixed_points))
    config_json = html.escape(json.dumps(data.config, indent=2, sort_keys=True))
    sections.append(("summary", "Run", summary + notes
                     + f"<details><summary>configuration (config.json)</summary>"
                       f"<pre>{config_json}</pre></details>"))
    if data.history:
        sections.append(("training", "Training curves",
                         _plot_div(F.training_figure(data.history), "fig-training")))
    if data.task is not None and data.trials is not None:
        import jax

        few = sample_trials(data.task, key=jax.random.PRNGKey(1), n_trials=3)
        sections.append(("trials", "Sample trials",
                         '<p class="hint">Outputs solid, targets dashed; grey: steps the loss '
                         "ignores (mask 0).</p>"
                         + _plot_div(F.trials_figure(data.task, data.model, few), "fig-trials")))
    if data.trajectory is not None:
        fig3 = F.state_space_figure(
            np.asarray(data.trajectory.states), data.condition_values,
            data.condition_title or "", data.fixed_points, data.manifolds, n_components=3,
            pca=data.pca, inputs=data.analysis.inputs if data.analysis is not None else None,
            value_names=data.condition_value_names)
        hint = ("Drag to rotate, scroll to zoom. Hover a fixed point for its stability, speed, "
                "eigenvalues and readout. Click a legend entry to hide or show the trajectories "
                "of that condition (double-click: show only it).")
        sections.append(("state-space", "State space (3D, principal components)",
                         f'<p class="hint">{hint}</p>' + _plot_div(fig3, "fig-state-space")))
    if data.fixed_points is not None and len(data.fixed_points):
        sections.append(("spectra", "Eigenvalue spectra",
                         _plot_div(F.spectra_figure(data.fixed_points), "fig-spectra")))
    try:
        conn = F.connectivity_figure(data.model)
    except (TypeError, ValueError) as e:
        conn = None
        data.notes.append(str(e))
    if conn is not None:
        sections.append(("connectivity", "Connectivity", _plot_div(conn, "fig-connectivity")))
    if data.topology is not None and data.topology.number_of_nodes():
        sections.append(("topology", "Fixed-point topology",
                         _plot_div(F.topology_figure(data.topology, data.fixed_points),
                                   "fig-topology")))
    if data.task is not None and data.task.has_psychometric:
        sections.append(("psychometric", "Psychometric curve",
                         _plot_div(F.psychometric_figure(data.model, data.task),
                                   "fig-psychometric")))
    nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{html.escape(t)}</h2>{b}</section>'
                   for a, t, b in sections)
    title = f"rnnlab report: {data.name}"
    head = ('<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>')
    rest = (f"<header><h1>{html.escape(title)}</h1><p>{html.escape(str(data.path))}</p>"
            f"</header><nav>{nav}</nav><main>{body}</main></body></html>\n")
    csp = content_security_policy(head + rest)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">' + head + rest
    )


def write_report(
    run: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    analyze: bool = True,
    n_trials: int = 64,
    seed: int = 0,
    analysis_dir: str | os.PathLike | None = None,
) -> Path:
    """Write the interactive report of a run directory to ``RUN/report.html`` (or ``out``).

    One self-contained HTML file (plotly.js inlined, a Content-Security-Policy that forbids
    network requests): the run's configuration and final scores, training curves, sample trials
    (outputs against targets, mask shaded), an interactive 3-D state space (trajectories of
    ``n_trials`` fresh trials in the first three principal components, coloured and toggleable
    by condition; fixed points by stability with hover details; saddles' unstable directions;
    attractor manifolds), eigenvalue spectra at the fixed points, connectivity, the fixed-point
    topology graph, and a psychometric curve for decision tasks.

    Args:
        run: a run directory made by `rnnlab.train` / ``rnnlab train``.
        out: where to write (default ``RUN/report.html``).
        analyze: run ``rnnlab analyze RUN`` first when ``RUN/analysis/`` is missing (default).
        n_trials, seed: the fresh trials shown in the state space.
        analysis_dir: show the analysis saved there (``rnnlab analyze --out DIR``) instead of
            ``RUN/analysis/``.

    Returns: the path written.
    """
    n_trials = positive_int("n_trials", n_trials)
    require_plotly()  # fail before the (slower) loading and analysis
    data = load_run(run, n_trials=n_trials, seed=seed, analyze=analyze,
                    analysis_dir=analysis_dir)
    page = build_report_html(data)
    target = Path(out) if out is not None else Path(run) / "report.html"
    atomic_write_text(target, page)  # a random temporary name, removed on failure
    return target
