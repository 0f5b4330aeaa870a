"""`rnnlab import SOURCE --format NAME --out RUN`: a network trained elsewhere becomes a run
directory, so that `rnnlab analyze`, `plot` and `report` work on it."""

import hashlib
import json
from pathlib import Path
from typing import Optional

import typer

from ._app import CLIError, app

_FORMATS = ("auto", "trainrnnbrain", "psychrnn", "rnnlab")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _config_option(text: Optional[str]):
    """--config: a JSON file's path or inline JSON."""
    if text is None:
        return None
    if Path(text).is_file():
        return Path(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise CLIError(f"--config {text!r} is neither a file nor JSON; give the source's JSON "
                       "configuration file or inline JSON such as '{\"dt\": 1, \"tau\": 10}'") \
            from None
    if not isinstance(value, dict):
        raise CLIError(f"--config must be a JSON object, got {text!r}")
    return value


@app.command("import")
def import_cmd(
    source: Path = typer.Argument(..., help="Weight file: .safetensors, .npz, .mat or JSON "
                                  "parameters (a .pt/.pth pickle is refused with how to "
                                  "convert it)."),
    format: str = typer.Option(..., "--format", help="The file's naming: trainrnnbrain, "
                               "psychrnn, rnnlab, or auto (detect from its entries)."),
    out: Path = typer.Option(..., "--out", help="The run directory to create."),
    task: Optional[str] = typer.Option(
        None, "--task", help="The task the network was trained on (see `rnnlab tasks`); "
        "needed by `rnnlab analyze` for its inputs and trajectories."),
    task_param: list[str] = typer.Option(
        [], "--task-param", "-p", help="Task parameter NAME=VALUE (repeatable)."),
    config: Optional[str] = typer.Option(
        None, "--config", help="The source's JSON configuration (a file or inline JSON): "
        "dt, tau, activation, noise, constraints."),
    dt: Optional[float] = typer.Option(None, "--dt", help="Time step (overrides the file)."),
    tau: Optional[float] = typer.Option(None, "--tau", help="Time constant (overrides the "
                                        "file)."),
    activation: Optional[str] = typer.Option(None, "--activation", help="Activation name "
                                             "(overrides the file)."),
    score: bool = typer.Option(True, "--score/--no-score", help="With --task, score the "
                               "imported network on fresh trials (evaluation.json)."),
):
    """Import a network trained elsewhere (trainRNNbrain, PsychRNN, an rnnlab export) into a
    run directory: RUN/model.safetensors and RUN/config.json (with the task, if given, and the
    source file's name, format and SHA-256)."""
    fmt = format.strip().lower()
    if fmt not in _FORMATS:
        raise CLIError(f"--format {format!r} is not known; use one of {list(_FORMATS)}")
    if not source.is_file():
        raise CLIError(f"{source}: no such file")
    if (out / "config.json").exists():
        raise CLIError(f"--out {out} already holds a run; pick another --out")
    from ..io._lock import check_output_dir
    from ..runs._run import RUN_FILES

    try:  # not "", not /, not a file, not a non-empty directory that is not a run
        check_output_dir(out, own_names=RUN_FILES)
    except ValueError as e:
        raise CLIError(str(e)) from None
    cfg = _config_option(config)

    from ..interop import PickleRefused, from_file

    try:
        model = from_file(source, format=None if fmt == "auto" else fmt, config=cfg, dt=dt,
                          tau=tau, activation=activation)
    except PickleRefused as e:
        raise CLIError(str(e)) from None

    the_task = task_spec = None
    if task is not None:
        from .. import tasks as tasks_mod
        from ..training._runner import task_config
        from ._train import _parse_task_params

        params = _parse_task_params(task_param)
        the_task = tasks_mod.make(task, **params)
        if (the_task.n_in, the_task.n_out) != (model.n_in, model.n_out):
            raise CLIError(
                f"the task {task!r} has {the_task.n_in} inputs and {the_task.n_out} outputs, "
                f"the imported network {model.n_in} and {model.n_out}; pick the task it was "
                "trained on (--task-param to set its sizes)")
        task_spec = {"name": task, "params": task_config(the_task)}
    elif task_param:
        raise CLIError("--task-param needs --task")

    from .. import __version__
    from ..io import save
    from ..io._model_io import model_meta
    from ..io._safe import atomic_write_json

    if type(model).__name__ == "FunctionModel":
        raise CLIError(
            "the source's update (trainRNNbrain's cubic leak, gamma != 0) is not a built-in "
            "rnnlab model, so it cannot be written to a run; analyse it in Python: "
            f"rl.from_file({str(source)!r}, ...) gives a FunctionModel that "
            "rl.find_fixed_points and the figures take")
    if getattr(model, "activation_name", "") is None:
        raise CLIError(
            "the imported network's activation has no rnnlab name (trainRNNbrain's softplus is "
            "log(1 + exp(5 x))), so it cannot be written to a run; analyse it in Python: "
            f"rl.from_file({str(source)!r}, ...)")
    try:
        meta = model_meta(model)
    except ValueError as e:
        raise CLIError(f"the imported network cannot be written to a run: {e}") from None
    from ..io._lock import RunLock

    run_config = {
        "version": __version__,
        "task": task_spec,
        "model": meta,
        "imported": {"source": str(source.resolve()), "format": fmt if fmt != "auto" else None,
                     "sha256": _digest(source)},
    }
    with RunLock(out):  # one writer per run directory, as `rnnlab train`
        if (out / "config.json").exists():
            raise CLIError(f"--out {out} already holds a run; pick another --out")
        save(out / "model.safetensors", model)
        atomic_write_json(out / "config.json", run_config)  # last: marks the run complete

    kind = f"{type(model).__name__} ({getattr(model, 'form', '')} form)".replace(" ( form)", "")
    cons = [c for c, on in (("Dale's law", getattr(model, "dale", False)),
                            ("non-negative inputs", getattr(model, "nonnegative_inputs", False)),
                            ("non-negative outputs", getattr(model, "nonnegative_outputs", False)),
                            ("readout from excitatory units",
                             getattr(model, "readout_from", "all") == "excitatory"))
            if on]
    for name in ("w_rec_mask", "w_in_mask", "w_out_mask"):
        mask = getattr(model, name, None)
        if mask is not None and not bool(mask.all()):
            cons.append(f"{name} ({int((~mask).sum())} connections held at 0)")
    typer.echo(f"imported {kind}: {model.n_in} inputs, {model.n_hidden} units, {model.n_out} "
               f"outputs, dt={model.dt:g}" + (f"; constraints: {', '.join(cons)}" if cons else ""))
    if the_task is not None:
        if abs(float(the_task.dt) - float(model.dt)) > 1e-9 * float(model.dt):
            typer.echo(f"note: the task steps {the_task.dt:g} ms, the network dt={model.dt:g}: "
                       "each network step is one task step")
        if score:
            from ..runs import Run

            ev = Run.open(out).score()
            typer.echo(f"accuracy on {ev['n_trials']} fresh trials: {ev['accuracy']:.4f} "
                       f"(loss {ev['loss']:.4g})")
    typer.echo(f"run written to {out}; next: rnnlab analyze {out}")
