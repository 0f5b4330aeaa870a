"""The report's interactive plotly figures (same content and colours as `rnnlab.plot`)."""

from typing import Any

import jax
import numpy as np

from ..plot._project import (
    fit_projection,
    manifold_kind,
    manifold_states,
    stability_labels,
    unstable_directions,
)
from ..plot._state_space import SEGMENT_FRACTION
from ..plot._style import STABILITY_COLORS, STABILITY_ORDER, condition_colors, format_condition

# plotly marker symbols matching the matplotlib ones (filled / hollow / cross).
SYMBOLS_3D = {"stable": "circle", "saddle": "circle-open", "unstable": "x",
              "marginal": "diamond-open"}
SYMBOLS_2D = {"stable": "circle", "saddle": "circle-open", "unstable": "x-thin-open",
              "marginal": "diamond-open"}
_LAYOUT = {"template": "plotly_white", "font": {"family": "Helvetica, Arial, sans-serif",
                                                 "size": 12},
           "margin": {"l": 60, "r": 20, "t": 50, "b": 50}}


def _go():
    import plotly.graph_objects as go

    return go


def _kinds(labels):
    return [k for k in STABILITY_ORDER if k in labels] + sorted(set(labels) - set(STABILITY_ORDER))


# ----------------------------------------------------------------------------- training


def training_figure(history: list[dict]):
    from plotly.subplots import make_subplots

    go = _go()
    step = [h["step"] for h in history]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "task performance"))
    fig.add_trace(go.Scatter(x=step, y=[h["loss"] for h in history], mode="lines+markers",
                             name="loss"), 1, 1)
    for key, name in (("accuracy", "accuracy"), ("r2", "R²")):
        if any(key in h for h in history):
            fig.add_trace(go.Scatter(x=step, y=[h.get(key) for h in history],
                                     mode="lines+markers", name=name), 1, 2)
    losses = np.array([h["loss"] for h in history], float)
    if np.all(losses > 0) and losses.max() / losses.min() > 10:
        fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", range=[-0.02, 1.02], row=1, col=2)
    fig.update_layout(height=340, **_LAYOUT)
    return fig


# ----------------------------------------------------------------------------- trials


def trials_figure(task, model, trials):
    from plotly.subplots import make_subplots

    from .._simulate import simulate
    from ..plot._trials import _describe

    go = _go()
    inputs, targets = np.asarray(trials.inputs), np.asarray(trials.targets)
    mask = np.asarray(trials.mask)
    outputs = np.asarray(simulate(model, trials.inputs).outputs)
    if task.loss_type == "cross_entropy":
        outputs = np.asarray(jax.nn.softmax(outputs, axis=-1))
    n_trials, n_steps, n_out = targets.shape
    separate = n_out <= 4
    groups = [[j] for j in range(n_out)] if separate else [list(range(n_out))]
    t = np.arange(n_steps) * float(task.dt)
    conds = {k: np.asarray(v) for k, v in trials.conditions.items()}
    titles = [_describe(conds, c) or f"trial {c + 1}" for c in range(n_trials)]
    fig = make_subplots(rows=1 + len(groups), cols=n_trials, shared_xaxes=True,
                        subplot_titles=titles + [""] * (len(groups) * n_trials),
                        vertical_spacing=0.05, horizontal_spacing=0.04)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    bands = []  # mask-0 spans, added after the traces (plotly skips shapes on empty subplots)
    for c in range(n_trials):
        for j in range(inputs.shape[-1]):
            fig.add_trace(go.Scatter(x=t, y=inputs[c, :, j], mode="lines",
                                     line={"color": palette[j % 10], "width": 1.2},
                                     name=f"input {j + 1}", legendgroup=f"in{j}",
                                     showlegend=c == 0), 1, c + 1)
        for r, chans in enumerate(groups, start=2):
            off = np.all(mask[c][:, chans] == 0, axis=-1)
            edges = np.flatnonzero(np.diff(np.concatenate([[0], off.astype(int), [0]])))
            for a, b in zip(edges[::2], edges[1::2]):
                bands.append((t[a] - task.dt / 2, t[b - 1] + task.dt / 2, r, c + 1))
            for j in chans:
                color = palette[j % 10]
                fig.add_trace(go.Scatter(x=t, y=targets[c, :, j], mode="lines",
                                         line={"color": color, "dash": "dash", "width": 1.2},
                                         name=f"target {j + 1}", legendgroup=f"t{j}",
                                         showlegend=c == 0), r, c + 1)
                fig.add_trace(go.Scatter(x=t, y=outputs[c, :, j], mode="lines",
                                         line={"color": color, "width": 2},
                                         name=f"output {j + 1}", legendgroup=f"o{j}",
                                         showlegend=c == 0), r, c + 1)
    for x0, x1, row, col in bands:
        fig.add_vrect(x0=x0, x1=x1, fillcolor="#d9d9d9", opacity=0.6, line_width=0,
                      layer="below", row=row, col=col)
    for c in range(n_trials):
        fig.update_xaxes(title_text="time (ms)", row=1 + len(groups), col=c + 1)
    fig.update_yaxes(title_text="input", row=1, col=1)
    for r, chans in enumerate(groups, start=2):
        fig.update_yaxes(title_text=f"output {chans[0] + 1}" if separate else "output",
                         row=r, col=1)
    fig.update_layout(height=200 + 150 * len(groups), **_LAYOUT)
    return fig


# ----------------------------------------------------------------------------- state space


def fixed_point_hover(fp, i: int, n_eigs: int = 6) -> str:
    """Hover text of fixed point ``i``: stability, speed, leading eigenvalues, readout."""
    lab = stability_labels(fp)[i]
    lam = np.asarray(fp.eigenvalues)[i][:n_eigs]
    eig = ", ".join(f"{z.real:.3g}{z.imag:+.3g}i" if abs(z.imag) > 0 else f"{z.real:.3g}"
                    for z in lam)
    out = ", ".join(f"{v:.3g}" for v in np.asarray(fp.outputs)[i])
    inp = ", ".join(f"{v:.3g}" for v in np.asarray(fp.inputs)[i])
    return (f"<b>fixed point {i}</b><br>stability: {lab} ({int(np.asarray(fp.n_unstable)[i])} "
            f"unstable modes)<br>speed |F|: {float(np.asarray(fp.speeds)[i]):.2e}<br>"
            f"eigenvalues (largest Re): {eig}<br>readout: [{out}]<br>at input: [{inp}]")


def state_space_figure(states, condition_values, condition_name, fixed_points=None,
                       manifolds=None, *, n_components: int = 3, pca=None):
    """Interactive 2-D/3-D state space; a legend entry per condition toggles its trajectories."""
    go = _go()
    traj = np.asarray(states, float)
    proj = fit_projection(traj, n_components, pca=pca)
    z = proj(traj)
    extent = float(np.max(np.ptp(z.reshape(-1, n_components), axis=0))) or 1.0
    Scatter = go.Scatter3d if n_components == 3 else go.Scatter
    fig = go.Figure()

    def xyz(pts):
        cols = {"x": pts[:, 0], "y": pts[:, 1]}
        if n_components == 3:
            cols["z"] = pts[:, 2]
        return cols

    def joined(arrs):  # several polylines in one trace, separated by gaps
        nan = np.full((1, n_components), np.nan)
        return np.concatenate([np.concatenate([a, nan]) for a in arrs])

    if condition_values is None:
        fig.add_trace(Scatter(**xyz(joined(list(z))), mode="lines", name="trajectories",
                              line={"color": "#777777", "width": 2}, hoverinfo="skip"))
    else:
        labels, index, colors = condition_colors(condition_values)
        opacity = 0.8 if len(z) <= 16 else max(0.35, 0.8 * np.sqrt(16 / len(z)))
        for g, (lab, color) in enumerate(zip(labels, colors)):
            members = [z[i] for i in np.flatnonzero(index == g)]
            fig.add_trace(Scatter(**xyz(joined(members)), mode="lines",
                                  name=f"{condition_name} {lab}", legendgroup=f"cond{g}",
                                  line={"color": color, "width": 2}, opacity=opacity,
                                  hoverinfo="name"))
    if manifolds:
        for k, m in enumerate(manifolds):
            pts = proj(manifold_states(m))
            if manifold_kind(m) == "ring":
                pts = np.vstack([pts, pts[:1]])
            fig.add_trace(Scatter(**xyz(pts), mode="lines", name=f"{manifold_kind(m)} attractor",
                                  line={"color": "#555555", "width": 8}, opacity=0.5,
                                  legendgroup="manifolds", showlegend=k == 0))
    if fixed_points is not None and len(np.asarray(fixed_points.states)):
        labels = stability_labels(fixed_points)
        pts = proj(np.asarray(fixed_points.states))
        half = SEGMENT_FRACTION * extent
        for kind in _kinds(labels):
            sel = [i for i, lab in enumerate(labels) if lab == kind]
            color = STABILITY_COLORS.get(kind, "#000000")
            symbols = SYMBOLS_3D if n_components == 3 else SYMBOLS_2D
            marker = {"color": color, "size": 9 if n_components == 3 else 12,
                      "symbol": symbols.get(kind, "square"), "line": {"color": color, "width": 2}}
            fig.add_trace(Scatter(**xyz(pts[sel]), mode="markers", marker=marker,
                                  name=f"{kind} fixed points ({len(sel)})",
                                  legendgroup=f"fp_{kind}",
                                  hovertext=[fixed_point_hover(fixed_points, i) for i in sel],
                                  hoverinfo="text", customdata=sel))
            if kind == "saddle":
                segs = []
                for i in sel:
                    for v in unstable_directions(fixed_points, i):
                        d = proj.direction(v) * half
                        segs.append(np.stack([pts[i] - d, pts[i] + d]))
                if segs:
                    fig.add_trace(Scatter(**xyz(joined(segs)), mode="lines",
                                          name="unstable directions", legendgroup="fp_saddle",
                                          line={"color": color, "width": 4},
                                          hoverinfo="skip", showlegend=False))
    axis = proj.axis_labels()
    if n_components == 3:
        fig.update_layout(scene={"xaxis_title": axis[0], "yaxis_title": axis[1],
                                 "zaxis_title": axis[2], "aspectmode": "data"})
    else:
        fig.update_xaxes(title_text=axis[0])
        fig.update_yaxes(title_text=axis[1], scaleanchor="x")
    fig.update_layout(height=640, legend={"itemclick": "toggle", "itemdoubleclick": "toggleothers"},
                      **_LAYOUT)
    return fig


# ----------------------------------------------------------------------------- spectra


def spectra_figure(fp):
    go = _go()
    fig = go.Figure()
    labels = stability_labels(fp)
    lam = np.asarray(fp.eigenvalues)
    if fp.is_continuous:
        fig.add_vline(x=0, line={"color": "#444444", "dash": "dash", "width": 1.5})
        boundary = "Re λ = 0 (continuous time)"
    else:
        th = np.linspace(0, 2 * np.pi, 200)
        fig.add_trace(go.Scatter(x=np.cos(th), y=np.sin(th), mode="lines", name="|λ| = 1",
                                 line={"color": "#444444", "dash": "dash"}))
        boundary = "|λ| = 1 (map)"
    for kind in _kinds(labels):
        sel = [i for i, lab in enumerate(labels) if lab == kind]
        vals = lam[sel]
        owner = np.repeat(sel, lam.shape[1])
        color = STABILITY_COLORS.get(kind, "#000000")
        fig.add_trace(go.Scatter(
            x=vals.real.ravel(), y=vals.imag.ravel(), mode="markers",
            name=f"{kind} ({len(sel)} points)",
            marker={"color": color, "symbol": SYMBOLS_2D.get(kind, "square"), "size": 7,
                    "line": {"color": color, "width": 1.2}},
            hovertext=[f"fixed point {o} ({kind})" for o in owner], hoverinfo="text+x+y"))
    fig.update_xaxes(title_text="Re λ")
    fig.update_yaxes(title_text="Im λ")
    fig.update_layout(height=460, title=f"eigenvalues at fixed points; boundary {boundary}",
                      **_LAYOUT)
    if not fp.is_continuous:
        fig.update_yaxes(scaleanchor="x")
    return fig


# ----------------------------------------------------------------------------- connectivity


def connectivity_figure(model):
    from plotly.subplots import make_subplots

    from ..plot._connectivity import excitatory_count, model_weights, recurrent_blocks
    from ..plot._style import symmetric_limit

    go = _go()
    w = model_weights(model)
    w_rec = w["w_rec"]
    n = w_rec.shape[1]
    blocks = recurrent_blocks(w_rec)
    lim = symmetric_limit(w_rec, w["w_in"], w["w_out"], quantile=0.99)
    eigs = [np.linalg.eigvals(b.astype(np.float64)) for b in blocks]
    radius = max(np.max(np.abs(e)) for e in eigs)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                        subplot_titles=("W_rec (row: post, column: pre)",
                                        f"eigenvalues of W_rec (radius {radius:.2f})"))
    fig.add_trace(go.Heatmap(z=w_rec, colorscale="RdBu", reversescale=True, zmin=-lim,
                             zmax=lim, zmid=0, colorbar={"title": "weight", "x": 0.5},
                             hovertemplate="post %{y}, pre %{x}: %{z:.3g}<extra></extra>"), 1, 1)
    n_exc = excitatory_count(model)
    if n_exc is not None and 0 < n_exc < n:
        for kw in ({"x0": n_exc - 0.5, "x1": n_exc - 0.5, "y0": -0.5, "y1": n - 0.5},
                   {"y0": n_exc - 0.5, "y1": n_exc - 0.5, "x0": -0.5, "x1": n - 0.5}):
            fig.add_shape(type="line", line={"color": "black", "width": 2}, row=1, col=1, **kw)
    th = np.linspace(0, 2 * np.pi, 200)
    fig.add_trace(go.Scatter(x=np.cos(th), y=np.sin(th), mode="lines", name="unit circle",
                             line={"color": "#888888"}), 1, 2)
    for i, b in enumerate(blocks[1:], start=1):  # gated models: one block per gate
        fig.add_shape(type="line", line={"color": "black", "width": 2}, row=1, col=1,
                      x0=-0.5, x1=n - 0.5, y0=i * n - 0.5, y1=i * n - 0.5)
    colors = ["black"] if len(eigs) == 1 else ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for i, eig in enumerate(eigs):
        fig.add_trace(go.Scatter(x=eig.real, y=eig.imag, mode="markers",
                                 name="eigenvalues" if len(eigs) == 1 else f"block {i + 1}",
                                 marker={"color": colors[i % len(colors)], "size": 5}), 1, 2)
    fig.update_yaxes(autorange="reversed", title_text="postsynaptic unit", row=1, col=1)
    fig.update_xaxes(title_text="presynaptic unit", row=1, col=1)
    fig.update_xaxes(title_text="Re λ", row=1, col=2)
    fig.update_yaxes(title_text="Im λ", row=1, col=2, scaleanchor="x2")
    fig.update_layout(height=460, showlegend=len(eigs) > 1, **_LAYOUT)
    return fig


# ----------------------------------------------------------------------------- topology


def topology_figure(graph, fp):
    from ..plot._topology import edge_weight, graph_layout, node_stability

    go = _go()
    pos, in_pcs = graph_layout(graph, fp)
    fig = go.Figure()
    for u, v, d in graph.edges(data=True):
        w = edge_weight(d)
        if u == v or w <= 0:
            continue
        fig.add_annotation(x=pos[v][0], y=pos[v][1], ax=pos[u][0], ay=pos[u][1],
                           xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                           arrowhead=2, arrowwidth=1 + 3 * w, arrowcolor="#666666",
                           standoff=10, startstandoff=10, text="")
    by_kind: dict[str, list] = {}
    for node in graph.nodes:
        by_kind.setdefault(node_stability(graph, node, fp), []).append(node)
    for kind in _kinds(list(by_kind)):
        nodes = by_kind[kind]
        color = STABILITY_COLORS.get(kind, "#000000")
        out = {n: [(v, edge_weight(d)) for _, v, d in graph.out_edges(n, data=True)]
               for n in nodes}
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
            text=[str(n) for n in nodes], textposition="top right", name=kind,
            marker={"color": color, "size": 16, "symbol": SYMBOLS_2D.get(kind, "square"),
                    "line": {"color": color, "width": 2}},
            hovertext=[f"fixed point {n} ({kind})<br>" + "<br>".join(
                f"→ {v}: {w:.2f}" for v, w in out[n]) for n in nodes],
            hoverinfo="text"))
    fig.update_xaxes(title_text="PC1 of fixed points" if in_pcs else "", showticklabels=in_pcs)
    fig.update_yaxes(title_text="PC2 of fixed points" if in_pcs else "", showticklabels=in_pcs)
    fig.update_layout(height=460, title="fixed-point topology (edge width: transition "
                                        "probability)", **_LAYOUT)
    return fig


# ----------------------------------------------------------------------------- psychometric


def psychometric_figure(model, task, *, key=None, n_trials: int = 2000):
    from ..plot._psychometric import fit_logistic, psychometric_data

    go = _go()
    data = psychometric_data(model, task, key=key if key is not None else jax.random.PRNGKey(0),
                             n_trials=n_trials)
    x_name = getattr(task, "psychometric_x", "signed_coherence")
    by_name = getattr(task, "psychometric_by", None)
    levels = np.asarray(data["x"], float)
    palette = ["#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    fig = go.Figure()
    for i, g in enumerate(np.asarray(data["groups"])):
        color = palette[i % len(palette)]
        name = "data" if by_name is None else f"{by_name} {format_condition(g.item())}"
        p, n = np.asarray(data["p_choice"])[i], np.asarray(data["n"])[i]
        se = np.sqrt(np.clip(p * (1 - p), 0, None) / np.maximum(n, 1))
        fig.add_trace(go.Scatter(x=levels, y=p, mode="markers", name=name, legendgroup=name,
                                 error_y={"type": "data", "array": se},
                                 marker={"color": color, "size": 9},
                                 hovertext=[f"{int(k)} trials" for k in n]))
        ok = np.isfinite(p) & (n > 0)
        if ok.sum() >= 2 and 0 < np.nanmean(p) < 1:
            bias, scale = fit_logistic(levels, p, n)
            xs = np.linspace(levels[ok].min(), levels[ok].max(), 300)
            fig.add_trace(go.Scatter(x=xs, y=1 / (1 + np.exp(-(xs - bias) / scale)),
                                     mode="lines", name=f"{name}: logistic fit",
                                     legendgroup=name, showlegend=False,
                                     line={"color": color}))
    label = x_name.replace("_", " ")
    fig.update_xaxes(title_text=f"{label} (%)" if "coherence" in x_name else label)
    fig.update_yaxes(title_text="P(choice 1)", range=[-0.03, 1.03])
    fig.update_layout(height=400, width=600, **_LAYOUT)
    return fig


def describe_condition(name: str | None, values: Any) -> str:
    if name is None or values is None:
        return ""
    labels, _, _ = condition_colors(values)
    return f"{name}: " + ", ".join(format_condition(x) for x in labels)
