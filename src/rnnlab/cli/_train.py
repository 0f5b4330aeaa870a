"""`rnnlab tasks`, `rnnlab train`, `rnnlab evaluate`."""

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ._app import CLIError, app
from ._common import MODEL_BUILDERS, register_model_builder


def _ctrnn_builder(n_in, n_hidden, n_out, *, key, dt, **opts):
    from ..models import CTRNN

    return CTRNN(n_in, n_hidden, n_out, key=key, dt=dt, **opts)


register_model_builder("ctrnn", _ctrnn_builder)

# `rnnlab train` settings for tasks that recommend none (AbstractTask.recommended_training).
_TRAIN_DEFAULTS = {"learning_rate": 1e-2, "hidden": 64, "activation": "tanh", "batch_size": 64,
                   "steps": 3000}


def _parse_task_params(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise CLIError(f"--task-param {item!r}: write NAME=VALUE (VALUE as JSON, e.g. n_bits=4)")
        name, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, list):
            value = tuple(value)
        out[name.strip()] = value
    return out


@app.command("tasks")
def tasks_cmd(
    name: Optional[str] = typer.Argument(None, help="Show this task's parameters."),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Save a picture of sample trials (FILE.png and FILE.svg)."
    ),
    n_trials: int = typer.Option(3, "--n-trials", help="Trials in the --plot picture."),
    seed: int = typer.Option(0, "--seed", help="Seed for the --plot trials."),
):
    """List the tasks, or show one task's parameters and defaults."""
    if name is None:  # from the static table: listing needs no JAX
        from ._catalog import TASKS

        width = max(len(n) for n in TASKS)
        for n, text in TASKS.items():
            typer.echo(f"{n:<{width}}  {text}")
        return
    from .. import tasks

    params = tasks.task_parameters(name)
    task = tasks.make(name)
    typer.echo(f"{name}: {tasks.describe(name)}")
    typer.echo(f"  inputs {task.n_in}, outputs {task.n_out}, {task.n_steps} steps of "
               f"{task.dt:g} ms, loss {task.loss_type}, target accuracy {task.target_accuracy}")
    typer.echo("  parameters:")
    for k, v in params.items():
        typer.echo(f"    {k} = {v!r}")
    from ._tasks_extra import plot_task, show_task_details

    show_task_details(task)
    if plot is not None:
        plot_task(task, plot, n_trials, seed)


@app.command("train")
def train_cmd(
    task: str = typer.Argument(..., help="Task name (see `rnnlab tasks`)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/TASK)."),
    model: str = typer.Option("ctrnn", "--model", help="Model family."),
    hidden: Optional[int] = typer.Option(
        None, "--hidden", help="Number of hidden units (default: the task's recommendation, "
        "see `rnnlab tasks NAME`, else 64)."
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Maximum optimiser steps (default: the task's recommendation, "
        "else 3000)."
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="Trials per step (default: the task's recommendation, "
        "else 64)."
    ),
    lr: Optional[float] = typer.Option(
        None, "--lr", help="Adam learning rate (default: the task's recommendation, else "
        "1e-2: flipflop reaches 99% in ~150 steps)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (initialisation, trials, noise)."),
    activation: Optional[str] = typer.Option(
        None, "--activation", help="Activation function (default: the task's "
        "recommendation, else tanh)."
    ),
    tau: float = typer.Option(100.0, "--tau", help="Time constant (ms)."),
    dale: bool = typer.Option(
        False, "--dale", help="Dale's law (80% excitatory); without --activation the "
        "activation is the task's recommendation if it is never negative, else relu."
    ),
    allow_negative_rates: bool = typer.Option(
        False, "--allow-negative-rates", help="With --dale, accept an activation that can be "
        "negative (tanh, linear, ...): units then act against their E/I type below zero."
    ),
    no_autapses: bool = typer.Option(False, "--no-autapses", help="Zero self-connections."),
    noise: float = typer.Option(0.0, "--noise", help="Recurrent noise std (sigma_rec)."),
    input_noise: float = typer.Option(0.0, "--input-noise", help="Input noise std."),
    form: str = typer.Option("potential", "--form", help="CT-RNN form: potential or rate."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Global-norm clip (0: off)."),
    l2_rates: float = typer.Option(0.0, "--l2-rates", help="L2 penalty on rates."),
    l2_weights: float = typer.Option(0.0, "--l2-weights", help="L2 penalty on weights."),
    eval_every: int = typer.Option(50, "--eval-every", help="Evaluate every N steps."),
    target_accuracy: Optional[float] = typer.Option(
        None, "--target-accuracy",
        help="Early-stop accuracy (default: halfway between the task's threshold and 1).",
    ),
    task_param: list[str] = typer.Option(
        [], "--task-param", "-p", help="Task parameter NAME=VALUE (repeatable)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar."),
    curriculum: Optional[str] = typer.Option(
        None, "--curriculum",
        help="JSON list of stages (settings of TASK, or {task, params}), inline or a file; "
        "each stage trains until --target-accuracy (default 0.9), --steps is the total budget.",
    ),
):
    """Train a network on a task; writes a run directory.

    --hidden, --activation, --steps, --batch-size and --lr default to the settings the task
    recommends (shown by `rnnlab tasks NAME`), else to 64 tanh units, 3000 steps, 64 trials
    and Adam 1e-2.
    """
    from .._interrupt import graceful_interrupts

    # Ctrl-C / SIGTERM stop training at the next evaluation with a checkpoint (a second one
    # exits at once); see rnnlab._interrupt
    with graceful_interrupts():
        _train(task=task, out=out, model=model, hidden=hidden, steps=steps,
            batch_size=batch_size, lr=lr, seed=seed, activation=activation, tau=tau,
            dale=dale, allow_negative_rates=allow_negative_rates, no_autapses=no_autapses,
            noise=noise, input_noise=input_noise, form=form, grad_clip=grad_clip,
            l2_rates=l2_rates, l2_weights=l2_weights, eval_every=eval_every,
            target_accuracy=target_accuracy, task_param=task_param, resume=resume,
            progress=progress, curriculum=curriculum)


def _train(task, out, model, hidden, steps, batch_size, lr, seed, activation, tau, dale,
           allow_negative_rates, no_autapses, noise, input_noise, form, grad_clip, l2_rates,
           l2_weights, eval_every, target_accuracy, task_param, resume, progress,
           curriculum):
    import jax

    from .. import tasks as tasks_mod
    from ..training import TrainingDiverged, TrainingInterrupted

    if model not in MODEL_BUILDERS:
        raise CLIError(f"--model {model!r} is not known; use one of {sorted(MODEL_BUILDERS)}")
    if model != "ctrnn":
        given = _options_given(_CTRNN_ONLY)
        if given:
            raise CLIError(f"{given[0]} applies only to --model ctrnn (a {model} network has no "
                           f"{_CTRNN_ONLY[given[0]]}); remove it")
    task_kwargs = _parse_task_params(task_param)
    the_task = tasks_mod.make(task, **task_kwargs)
    rec = {**_TRAIN_DEFAULTS, **the_task.recommended_training()}
    lr = rec["learning_rate"] if lr is None else lr
    hidden = rec["hidden"] if hidden is None else hidden
    if activation is None:
        activation = rec["activation"]
        if dale and not allow_negative_rates:
            from ..models._activations import DALE_DEFAULT_ACTIVATION, can_be_negative

            if can_be_negative(activation):
                # units act through their rates: Dale's signs need rates >= 0
                activation = DALE_DEFAULT_ACTIVATION
    steps = rec["steps"] if steps is None else steps
    batch_size = rec["batch_size"] if batch_size is None else batch_size
    if _empty_out_given():
        raise CLIError("--out is empty; give a directory for the run")
    out = Path(out) if out is not None else Path("runs") / task
    target_accuracy_given = target_accuracy is not None
    if target_accuracy is None:
        # the task's own (1.0: train all the steps, keep the best), else stop with a margin
        # above the task's threshold, so that the score on fresh trials (`rnnlab evaluate`) is
        # above the threshold too
        target_accuracy = rec.get(
            "target_accuracy", the_task.target_accuracy + 0.5 * (1.0 - the_task.target_accuracy))
    key = jax.random.PRNGKey(seed)
    k_model, k_train = jax.random.split(key)
    opts = {"activation": activation, "noise_std": noise, "input_noise_std": input_noise}
    if model == "ctrnn":
        opts.update(tau=tau, dale=dale, autapses=not no_autapses, form=form)
        if allow_negative_rates:
            opts["allow_negative_rates"] = True
    elif dale or no_autapses:
        opts.update(dale=dale, autapses=not no_autapses)
    _check_training_memory(the_task, model, hidden, batch_size, task_kwargs)
    net = MODEL_BUILDERS[model](
        the_task.n_in, hidden, the_task.n_out, key=k_model, dt=the_task.dt, **opts
    )
    run_config = {
        "seed": seed,
        "cli": {"task": task, "model": model, "hidden": hidden, "options": opts,
                "task_params": task_kwargs},
    }
    from ..runs import Run

    # refuses a directory that already holds a run (unless --resume)
    the_run = Run.create(out, task=the_task, model=net, config=run_config, resume=resume)
    if curriculum is not None:
        from ._tasks_extra import train_with_curriculum

        try:
            train_with_curriculum(
                curriculum, task, task_kwargs, net, key=k_train, steps=steps, out=out,
                threshold=target_accuracy if target_accuracy_given else None, resume=resume,
                batch_size=batch_size, learning_rate=lr, grad_clip=grad_clip or None,
                l2_rates=l2_rates, l2_weights=l2_weights, eval_every=eval_every,
                progress=progress, run_config=run_config,
            )
        except TrainingInterrupted as e:
            _interrupted(e, out)
        # the final model's score on the fixed set of fresh trials, as after plain training
        _echo_score(Run.open(out).score())
        return
    try:
        result = the_run.train(
            key=k_train, steps=steps, batch_size=batch_size, learning_rate=lr,
            grad_clip=grad_clip or None, l2_rates=l2_rates, l2_weights=l2_weights,
            eval_every=eval_every, target_accuracy=target_accuracy, progress=progress,
        )
    except TrainingDiverged as e:
        raise CLIError(str(e)) from None
    except TrainingInterrupted as e:
        _interrupted(e, out)
    last = result.history[-1]
    typer.echo(
        f"trained {result.steps} steps in {last['wall_time']:.1f} s (last training-time "
        f"evaluation: accuracy {last['accuracy']:.4f}, loss {last['loss']:.4g}); run saved in "
        f"{out}"
    )
    best = result.best_record
    if best is not None:
        typer.echo(
            f"best evaluation at step {result.best_step} (accuracy {best['accuracy']:.4f}): "
            "saved as model.safetensors (the final model is model_final.safetensors; see "
            "best.json)"
        )
    score = the_run.evaluation
    if score is not None:
        _echo_score(score)


def _echo_score(score: dict) -> None:
    """Print the saved model's score on the fixed evaluation set (evaluation.json)."""
    typer.echo(
        f"final accuracy {score['accuracy']:.4f} +- {score['accuracy_se']:.4f} (loss "
        f"{score['loss']:.4g}) of model.safetensors on {score['n_trials']} fresh trials "
        f"(fixed evaluation set, seed {score['seed']}; evaluation.json)"
    )


# options that only a CT-RNN has, and what they set
_CTRNN_ONLY = {"--tau": "time constant", "--form": "potential/rate form",
               "--allow-negative-rates": "Dale's law to relax"}


def _options_given(names) -> list[str]:
    """Which of the options ``names`` the command line gave (as ``--opt value`` or
    ``--opt=value``)."""
    from . import current_argv

    args = current_argv()
    return [n for n in names if any(a == n or a.startswith(n + "=") for a in args)]


def _empty_out_given() -> bool:
    """Whether the command line gave ``--out ""`` (which the option parser turns into '.')."""
    from . import current_argv

    args = current_argv()
    return any((a in ("--out", "-o") and i + 1 < len(args) and not args[i + 1].strip())
               or a.strip() in ("--out=", "-o=") for i, a in enumerate(args))


# state vectors per unit of the model families (gate blocks): sizes their memory estimate
_GATES = {"gru": 3, "lstm": 4}


def _check_training_memory(task, model: str, hidden, batch_size, task_kwargs) -> None:
    """Refuse, before anything is allocated or written, a training that would not fit in
    memory (the estimate and the machine's memory in the message)."""
    from ..io._resources import check_memory, training_bytes

    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
               for v in (hidden, batch_size)):
        return  # the model and the training settings refuse these by name
    n_steps = int(getattr(task, "n_steps", 1))
    # training batches, and the evaluations' (256 trials)
    need = training_bytes(task.n_in, hidden, task.n_out, n_steps, max(batch_size, 256),
                          gates=_GATES.get(model, 1))
    params = "".join(f" -p {k}={v}" for k, v in task_kwargs.items())
    check_memory(
        need, f"training {hidden} units (--hidden) on batches of {batch_size} trials "
        f"(--batch-size) of {n_steps} steps with {task.n_in} inputs and {task.n_out} outputs"
        f"{' (' + params.strip() + ')' if params else ''}",
        hint="lower --hidden, --batch-size or the task's size")


def resume_command(out: Path) -> str:
    """The command line that continues this run: the one that started it, with --resume (and
    --out, when it was left to its default)."""
    import shlex

    from . import current_argv

    args = [a for a in current_argv() if a != "--resume"]
    if not any(a in ("--out", "-o") or a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    return "rnnlab " + shlex.join([*args, "--resume"])


def _interrupted(e, out: Path) -> None:
    """Say where the interrupted run is and how to continue it; exit 130."""
    if e.checkpoint is not None:
        typer.echo(f"rnnlab: training interrupted after {e.step} steps; the run is in {out} "
                   f"(checkpoint {e.checkpoint}). Continue it with:\n  {resume_command(out)}",
                   err=True)
    else:
        typer.echo(f"rnnlab: training interrupted after {e.step} steps (no checkpoint)",
                   err=True)
    raise typer.Exit(130)


@app.command("evaluate")
def evaluate_cmd(
    run: Path = typer.Argument(..., help="A run directory made by `rnnlab train`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    batch_size: int = typer.Option(512, "--batch-size", help="Number of fresh trials."),
    seed: int = typer.Option(12345, "--seed", help="Seed for the fresh trials."),
):
    """Accuracy and loss of a saved run on fresh trials."""
    import jax

    from ..runs import Run
    from ..training import evaluate

    the_run = Run.open(run)
    task, model = the_run.require_task(), the_run.model
    if batch_size >= 1:  # (evaluate names a non-positive one)
        from ..io._resources import check_memory

        need = 4.0 * 3 * batch_size * task.n_steps * (task.n_in + task.n_out + model.state_size)
        check_memory(need, f"evaluating {batch_size} trials (--batch-size) of {task.n_steps} "
                     "steps", hint="lower --batch-size")
    scores = evaluate(model, task, key=jax.random.PRNGKey(seed), batch_size=batch_size)
    if as_json:
        typer.echo(json.dumps({"run": str(run), "task": the_run.task_name,
                               "n_trials": batch_size, **scores}))
    else:
        for k, v in scores.items():
            typer.echo(f"{k:>10}: {v:.6g}")
