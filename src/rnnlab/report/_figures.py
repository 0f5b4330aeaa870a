"""The report's interactive plotly figures (same content and colours as `rnnlab.plot`)."""

import jax
import numpy as np

from ..figdata import (
    SEGMENT_FRACTION,
    condition_colors,
    describe_trial,
    edge_weight,
    excitatory_count,
    fit_projection,
    format_condition,
    graph_layout,
    input_groups,
    manifold_kind,
    manifold_states,
    model_weights,
    node_stability,
    projected_extent,
    psychometric_curves,
    recurrent_blocks,
    stability_kinds,
    stability_labels,
    stability_style,
    symmetric_limit,
    unstable_segments,
)

_LAYOUT = {"template": "plotly_white", "font": {"family": "Helvetica, Arial, sans-serif",
                                                 "size": 12},
           "margin": {"l": 60, "r": 20, "t": 50, "b": 50}}


def _go():
    import plotly.graph_objects as go

    return go


def _marker(kind: str, *, three_d: bool, size: float) -> dict:
    """The plotly marker of a stability class (`rnnlab.figdata.STABILITY_STYLES`): slow points
    at half ``size``."""
    style = stability_style(kind)
    return {"color": style.color, "size": size / 2 if style.small else size,
            "symbol": style.symbol_3d if three_d else style.symbol_2d,
            "line": {"color": style.color, "width": 1 if style.small else 2}}


def _point_name(kind: str, count: int) -> str:
    """Legend name of a class: ``"stable fixed points (8)"``; slow points are no fixed points:
    ``"slow points (|F| < tol) (5)"``."""
    if stability_style(kind).small:
        return f"slow points (|F| < tol) ({count})"
    return f"{kind} fixed points ({count})"


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
    titles = [describe_trial(conds, c) or f"trial {c + 1}" for c in range(n_trials)]
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
                       manifolds=None, *, n_components: int = 3, pca=None, inputs=None,
                       value_names=None):
    """Interactive 2-D/3-D state space; a legend entry per condition toggles its trajectories.

    Fixed points of different constant inputs belong to different systems: with several, each
    input's points (and manifolds) are their own legend group, named by the input (``inputs``:
    ``{name: vector}`` or ``[(name, vector)]``), so a click shows one input's points alone."""
    go = _go()
    traj = np.asarray(states, float)
    proj = fit_projection(traj, n_components, pca=pca)
    z = proj(traj)
    extent = projected_extent(z)
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
            if value_names:
                named = {format_condition(k): str(v) for k, v in dict(value_names).items()}
                lab = named.get(lab, f"{condition_name} {lab}")
            else:
                lab = f"{condition_name} {lab}"
            fig.add_trace(Scatter(**xyz(joined(members)), mode="lines",
                                  name=lab, legendgroup=f"cond{g}",
                                  line={"color": color, "width": 2}, opacity=opacity,
                                  hoverinfo="name"))
    has_points = fixed_points is not None and len(np.asarray(fixed_points.states))
    groups = input_groups(fixed_points, inputs) if has_points else [("", None)]
    many = len(groups) > 1
    owner = {int(i): gi for gi, (_, mem) in enumerate(groups) if mem is not None
             for i in np.asarray(mem).reshape(-1)}
    if manifolds:
        shown = set()
        for m in manifolds:
            idx = getattr(m, "indices", None)
            first = int(np.asarray(idx).reshape(-1)[0]) if idx is not None and np.size(idx) \
                else None
            gi = owner.get(first, 0)
            prefix = f"{groups[gi][0]}: " if many else ""
            pts = proj(manifold_states(m))
            if manifold_kind(m) == "ring":
                pts = np.vstack([pts, pts[:1]])
            name = f"{prefix}{manifold_kind(m)} attractor"
            fig.add_trace(Scatter(**xyz(pts), mode="lines", name=name,
                                  line={"color": "#555555", "width": 8}, opacity=0.5,
                                  legendgroup=f"manifolds{gi}", showlegend=name not in shown))
            shown.add(name)
    for gi, (gname, members) in enumerate(groups if has_points else []):
        part = fixed_points if not many else fixed_points[members]
        prefix = f"{gname}: " if many else ""
        labels = stability_labels(part)
        pts = proj(np.asarray(part.states))
        half = SEGMENT_FRACTION * extent
        for kind in stability_kinds(labels):
            sel = [i for i, lab in enumerate(labels) if lab == kind]
            whole = [int(np.asarray(members)[i]) if many else i for i in sel]
            marker = _marker(kind, three_d=n_components == 3,
                             size=9 if n_components == 3 else 12)
            fig.add_trace(Scatter(**xyz(pts[sel]), mode="markers", marker=marker,
                                  name=prefix + _point_name(kind, len(sel)),
                                  legendgroup=f"fp{gi}_{kind}",
                                  hovertext=[(f"<b>{gname}</b><br>" if many else "")
                                             + fixed_point_hover(fixed_points, i)
                                             for i in whole],
                                  hoverinfo="text", customdata=whole))
            if kind == "saddle":
                segs = [seg for i in sel
                        for seg in unstable_segments(part, i, proj, half)]
                if segs:
                    fig.add_trace(Scatter(**xyz(joined(segs)), mode="lines",
                                          name="unstable directions",
                                          legendgroup=f"fp{gi}_saddle",
                                          line={"color": marker["color"], "width": 4},
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
    for kind in stability_kinds(labels):
        sel = [i for i, lab in enumerate(labels) if lab == kind]
        vals = lam[sel]
        owner = np.repeat(sel, lam.shape[1])
        marker = _marker(kind, three_d=False, size=7)
        marker["line"]["width"] = 1.2
        fig.add_trace(go.Scatter(
            x=vals.real.ravel(), y=vals.imag.ravel(), mode="markers",
            name=_point_name(kind, len(sel)) if stability_style(kind).small
            else f"{kind} ({len(sel)} points)", marker=marker,
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
    for kind in stability_kinds(by_kind):
        nodes = by_kind[kind]
        out = {n: [(v, edge_weight(d)) for _, v, d in graph.out_edges(n, data=True)]
               for n in nodes}
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
            text=[str(n) for n in nodes], textposition="top right", name=kind,
            marker=_marker(kind, three_d=False, size=16),
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
    """The psychometric curves of `rnnlab.figdata.psychometric_curves` (the task's own axis
    labels and curve names, as in `rnnlab.plot.psychometric`): points with binomial standard
    errors and each curve's logistic fit."""
    go = _go()
    curves = psychometric_curves(model, task, key=key, n_trials=n_trials)
    se = curves.standard_errors
    palette = ["#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    fig = go.Figure()
    for i in range(len(curves)):
        color = palette[i % len(palette)]
        name = curves.group_labels[i] if curves.split else "data"
        fig.add_trace(go.Scatter(x=curves.x, y=curves.p_choice[i], mode="markers", name=name,
                                 legendgroup=name, error_y={"type": "data", "array": se[i]},
                                 marker={"color": color, "size": 9},
                                 hovertext=[f"{int(k)} trials" for k in curves.n[i]]))
        fit = curves.fit_curve(i)
        if fit is not None:
            fig.add_trace(go.Scatter(x=fit[0], y=fit[1], mode="lines",
                                     name=f"{name}: logistic fit", legendgroup=name,
                                     showlegend=False, line={"color": color}))
    fig.update_xaxes(title_text=curves.x_label)
    fig.update_yaxes(title_text=curves.y_label, range=[-0.03, 1.03])
    fig.update_layout(height=400, width=600, **_LAYOUT)
    return fig
