"""Helpers for `rnnlab tasks NAME` (details, sample-trial pictures) and
`rnnlab train --curriculum`."""

import inspect
from pathlib import Path

import typer

from ._app import CLIError


def show_task_details(task) -> None:
    """Echo the task's conditions and the first paragraph of its documentation."""
    import jax

    try:
        conds = sorted(jax.eval_shape(task.sample, jax.random.PRNGKey(0)).conditions)
    except Exception:  # noqa: BLE001 - a description must never fail the command
        conds = []
    if conds:
        typer.echo(f"  conditions: {', '.join(conds)}")
    rec = task.recommended_training()
    if rec:
        flags = {"learning_rate": "--lr", "hidden": "--hidden", "activation": "--activation",
                 "batch_size": "--batch-size", "steps": "--steps",
                 "target_accuracy": "--target-accuracy"}
        parts = [f"{flags[k]} {v if isinstance(v, str) else format(v, 'g')}"
                 for k, v in rec.items()]
        typer.echo(f"  recommended training: {', '.join(parts)} (`rnnlab train {task_name(task)}`"
                   " uses these unless the option is given)")
    doc = inspect.getdoc(type(task)) or ""
    para = doc.split("\n\n")
    if len(para) > 1:
        typer.echo("  about:")
        for line in "\n\n".join(para[1:3]).splitlines():
            typer.echo(f"    {line}")


def task_name(task) -> str:
    from ..tasks import registered_name

    return registered_name(task) or "NAME"


def plot_task(task, path: Path, n_trials: int, seed: int) -> None:
    """Save a picture of ``n_trials`` sample trials (inputs, targets, mask) as PNG + SVG."""
    import jax

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'rnnlab[viz]'") from None
    from ..plot import save_figure, trials

    fig = trials(task, key=jax.random.PRNGKey(seed), n_trials=n_trials)
    written = save_figure(fig, path)
    typer.echo("  sample trials saved to " + ", ".join(str(p) for p in written))


def train_with_curriculum(spec, task_name, task_kwargs, net, *, key, steps, out, threshold,
                          resume, **train_kwargs):
    """`rnnlab train TASK --curriculum SPEC`: train through the curriculum's stages."""
    from ..tasks._curriculum import parse_curriculum_spec
    from ..training import train_curriculum

    try:
        cur = parse_curriculum_spec(spec, task_name, task_kwargs, threshold)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    if cur.stages[0].n_in != net.n_in or cur.stages[0].n_out != net.n_out:
        raise CLIError(
            f"the curriculum's stages have n_in={cur.stages[0].n_in}, "
            f"n_out={cur.stages[0].n_out} but {task_name} has n_in={net.n_in}, "
            f"n_out={net.n_out}"
        )
    if abs(cur.stages[0].dt - net.dt) > 1e-9:
        raise CLIError(f"the curriculum's stages have dt={cur.stages[0].dt} but {task_name} "
                       f"has dt={net.dt}")
    res = train_curriculum(net, cur, key=key, steps=steps, out_dir=out, resume=resume,
                           **train_kwargs)
    for i, (r, ok) in enumerate(zip(res.stages, res.passed)):
        typer.echo(f"stage {i}: accuracy {r.final_accuracy:.4f} after {r.steps} steps "
                   f"({'passed' if ok else 'not passed'})")
    typer.echo(
        f"curriculum {'completed' if res.completed else 'NOT completed'}: "
        f"{sum(res.passed)}/{len(cur.stages)} stages passed in {res.steps} steps; "
        f"run saved in {out}"
    )
