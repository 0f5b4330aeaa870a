"""`write_lfads_report`: the LFADS page, one self-contained HTML file for an evaluated fit
folder (scores next to the baselines, rates, factors, inputs; plotly inlined)."""

import html
import json
import os
from pathlib import Path

import numpy as np

from ..figdata import require_plotly
from ..io._safe import atomic_write_text
from ._report import _CSS, _kv_table, _plot_div, content_security_policy

METHODS = ("lfads", "smoothing", "smoothing+pca")


def _scores_table(evaluation: dict) -> str:
    methods = [m for m in METHODS if m in evaluation]
    keys: list[str] = []
    for m in methods:
        keys += [k for k in evaluation[m] if k not in keys]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td>" + "".join(
            f"<td>{evaluation[m][k]:.4g}</td>" if k in evaluation[m] else "<td>-</td>"
            for m in methods) + "</tr>" for k in keys)
    return (f'<table class="kv"><tr><th>metric (validation)</th>{head}</tr>{rows}</table>'
            '<p class="hint">rate R² against the true rates; state R²: the true states mapped '
            "linearly onto the inferred latents (CtDB); input R²: the inferred inputs mapped "
            "onto the true ones; bits per spike and co-bps as the Neural Latents Benchmark "
            "defines them; width: the smoothing kernel's standard deviation in bins, chosen on "
            "the validation split.</p>")


def _rates_figure(r):
    from plotly.subplots import make_subplots

    import plotly.graph_objects as go

    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"spike counts, validation trial {r.trial}", f"rates ({r.units})"))
    fig.add_trace(go.Heatmap(z=r.counts.T, x=r.time, colorscale="Greys", showscale=False,
                             name="counts"), row=1, col=1)
    k = min(6, r.counts.shape[1])
    peak = max(float(np.nanmax(r.inferred_rates[:, :k])), 1e-9)
    for i in range(k):
        off = i * peak * 1.1
        color = f"hsl({(i * 57) % 360},60%,45%)"
        fig.add_trace(go.Scatter(x=r.time, y=r.inferred_rates[:, i] + off, mode="lines",
                                 line=dict(color=color), name=f"inferred, neuron {i}",
                                 legendgroup=str(i)), row=1, col=2)
        if r.true_rates is not None:
            fig.add_trace(go.Scatter(x=r.time, y=r.true_rates[:, i] + off, mode="lines",
                                     line=dict(color=color, dash="dash"),
                                     name=f"true, neuron {i}", legendgroup=str(i)),
                          row=1, col=2)
    fig.update_xaxes(title_text=r.time_label)
    fig.update_yaxes(title_text="neuron", row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=2)
    fig.update_layout(height=420, margin=dict(l=50, r=20, t=40, b=40))
    return fig


def _factors_figure(f):
    import plotly.graph_objects as go

    fig = go.Figure()
    z = f.factors
    for i in range(z.shape[0]):
        extra = {} if f.color is None else dict(
            color=[float(f.color[i])] * z.shape[1], colorscale="RdBu_r",
            cmin=float(f.color.min()), cmax=float(f.color.max()),
            showscale=i == 0, colorbar=dict(title=f.color_label))
        dims = [z[i, :, j] if j < z.shape[2] else np.zeros(z.shape[1]) for j in range(3)]
        fig.add_trace(go.Scatter3d(x=dims[0], y=dims[1], z=dims[2], mode="lines",
                                   line=dict(width=3, **extra), showlegend=False,
                                   name=f"trial {i}"))
    fig.update_layout(height=520, margin=dict(l=0, r=0, t=20, b=0), scene=dict(
        xaxis_title="PC1", yaxis_title="PC2", zaxis_title="PC3"))
    return fig


def _inputs_figure(d, bin_size):
    import plotly.graph_objects as go

    t = np.arange(d.true.shape[1]) * (bin_size or 1.0)
    fig = go.Figure()
    for i in range(min(4, d.true.shape[0])):
        color = f"hsl({(i * 83) % 360},60%,45%)"
        fig.add_trace(go.Scatter(x=t, y=d.true[i, :, 0], mode="lines", name=f"true {i}",
                                 line=dict(color=color, dash="dash")))
        fig.add_trace(go.Scatter(x=t, y=d.mapped[i, :, 0], mode="lines",
                                 name=f"inferred {i}", line=dict(color=color)))
    fig.update_layout(height=360, xaxis_title="time (s)" if bin_size else "time (bins)",
                      yaxis_title="input", margin=dict(l=50, r=20, t=20, b=40))
    return fig


def build_lfads_report_html(fit) -> str:
    """The LFADS page for a loaded fit (`rnnlab.figdata`'s ``LFADSFit``)."""
    require_plotly()
    from plotly.offline import get_plotlyjs

    from ..figdata._lfads import factors_data, inputs_data, raster_data

    d = fit.dataset
    ev = fit.evaluation
    rows = [("data", f"{len(d.train_inds)} training + {len(d.valid_inds)} validation trials, "
                     f"{d.n_time} bins, {d.n_neurons} neurons"
                     + (f" + {d.n_heldout} held out" if d.n_heldout else "")
                     + (f", {d.n_forward} forward bins" if d.n_forward else "")),
            ("posterior samples", ev.get("n_samples", "?"))]
    sections = [("scores", "LFADS against the baselines", _kv_table(rows) + _scores_table(ev)),
                ("rates", "Inferred and true rates",
                 '<p class="hint">Left: one validation trial\'s counts (held-out neurons at '
                 "the top). Right: inferred rates solid, true rates dashed.</p>"
                 + _plot_div(_rates_figure(raster_data(fit, 0)), "fig-lfads-rates")),
                ("factors", "Factors (principal components)",
                 '<p class="hint">Validation trials\' inferred factors in their first three '
                 "principal components, coloured by the trial's mean true input.</p>"
                 + _plot_div(_factors_figure(factors_data(fit, 3)), "fig-lfads-factors"))]
    inputs = inputs_data(fit)
    if inputs is not None:
        sections.append(("inputs", f"Inferred and true inputs (R² {inputs.r2:.3f})",
                         _plot_div(_inputs_figure(inputs, d.bin_size), "fig-lfads-inputs")))
    sections.append(("evaluation", "evaluation.json",
                     f"<pre>{html.escape(json.dumps(ev, indent=2, sort_keys=True))}</pre>"))
    nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{html.escape(t)}</h2>{b}</section>'
                   for a, t, b in sections)
    title = f"rnnlab LFADS report: {fit.path.name if fit.path else 'fit'}"
    head = ('<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>')
    rest = (f"<header><h1>{html.escape(title)}</h1><p>{html.escape(str(fit.path))}</p>"
            f"</header><nav>{nav}</nav><main>{body}</main></body></html>\n")
    csp = content_security_policy(head + rest)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">' + head + rest)


def write_lfads_report(fit: str | os.PathLike, *, out: str | os.PathLike | None = None
                       ) -> Path:
    """Write the LFADS page of an evaluated fit folder (``rnnlab lfads fit`` then ``rnnlab
    lfads evaluate``) to ``FIT/report.html`` (or ``out``): the scores of LFADS next to the
    smoothing baselines, one trial's spikes with inferred and true rates, the factors in 3-D
    principal components, the inferred against the true inputs. Self-contained (plotly
    inlined, a Content-Security-Policy that forbids network requests). Returns the path."""
    require_plotly()
    from ..figdata._lfads import load_lfads_fit

    loaded = load_lfads_fit(fit)
    target = Path(out) if out is not None else Path(fit) / "report.html"
    atomic_write_text(target, build_lfads_report_html(loaded))
    return target
