"""`rnnlab lfads simulate | fit | evaluate`: spikes from a trained run, an LFADS fit to a data
file, and how much of the truth the fit recovered next to the smoothing baselines.

Heavy modules (JAX, the lfads package) are imported inside the commands: `import rnnlab.cli`
stays light."""

import json
from pathlib import Path
from typing import Optional

import typer

from ._app import CLIError, app

lfads_app = typer.Typer(
    name="lfads", help="LFADS: simulate spikes from a run, fit LFADS, evaluate the fit.",
    no_args_is_help=True, add_completion=False, rich_markup_mode=None,
)
app.add_typer(lfads_app, name="lfads")

DATA_FILE = "data.h5"  # the fit folder's copy of its data (lfads-torch's layout)
EVALUATION = "evaluation.json"
POSTERIOR = "posterior.safetensors"
HDF5_SUFFIXES = (".h5", ".hdf5")


def _read(path: Path):
    from ..lfads import read_hdf5, read_nwb

    if path.suffix.lower() == ".nwb":
        return read_nwb(path)
    if path.suffix.lower() in HDF5_SUFFIXES:
        return read_hdf5(path)
    raise CLIError(f"{path}: a data file ends in .h5/.hdf5 (lfads-torch's HDF5 layout) or "
                   ".nwb")


def _positive(name: str, value, integer: bool = True):
    if not value > 0:
        kind = "integer" if integer else "number"
        raise CLIError(f"{name} must be a positive {kind}, got {value}")


@lfads_app.command("simulate")
def simulate_cmd(
    run: Path = typer.Argument(..., help="A trained run directory (`rnnlab train`)."),
    out: Path = typer.Option(..., "--out", help="The data file to write: .h5 (lfads-torch's "
                             "HDF5 layout) or .nwb."),
    neurons: int = typer.Option(50, "--neurons", help="Neurons to simulate."),
    max_rate: float = typer.Option(20.0, "--max-rate", help="Peak rate of every neuron "
                                   "(spikes/s)."),
    trials: int = typer.Option(1000, "--trials", help="Trials to simulate."),
    heldout: int = typer.Option(0, "--heldout", help="Neurons held out (co-smoothing)."),
    forward: int = typer.Option(0, "--forward", help="Forward-prediction bins per trial."),
    valid_fraction: float = typer.Option(0.2, "--valid-fraction",
                                         help="Fraction of trials for validation."),
    noise: bool = typer.Option(False, "--noise", help="Run the network with its noise."),
    seed: int = typer.Option(0, "--seed", help="Random seed (trials, readout, spikes)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
):
    """Spike counts from a trained run's network on fresh trials of its task: its states
    through a random nonnegative readout give rates, Poisson counts are drawn; the truth
    (rates, states, inputs) is written with them."""
    import jax

    from ..lfads import simulate_spikes, write_hdf5, write_nwb
    from ..runs import Run

    suffix = out.suffix.lower()
    if suffix not in (*HDF5_SUFFIXES, ".nwb"):
        raise CLIError(f"--out must end in .h5, .hdf5 or .nwb, got {out}")
    if out.exists() and not force:
        raise CLIError(f"{out} exists; add --force to replace it or pick another --out")
    _positive("--neurons", neurons)
    _positive("--trials", trials)
    _positive("--max-rate", max_rate, integer=False)
    for name, val in (("--heldout", heldout), ("--forward", forward)):
        if val < 0:
            raise CLIError(f"{name} must be a non-negative integer, got {val}")
    data = simulate_spikes(Run.open(run), key=jax.random.PRNGKey(seed), n_neurons=neurons,
                           max_rate=max_rate, n_trials=trials, noise=noise,
                           valid_fraction=valid_fraction, heldout_neurons=heldout or None,
                           n_forward=forward, seed=seed)
    (write_nwb if suffix == ".nwb" else write_hdf5)(out, data)
    typer.echo(f"{data!r}\nwritten to {out}")


@lfads_app.command("fit")
def fit_cmd(
    data: Path = typer.Argument(..., help="A data file: .h5 (lfads-torch's layout) or .nwb."),
    out: Path = typer.Option(..., "--out", help="The fit's folder."),
    epochs: int = typer.Option(200, "--epochs", help="Most epochs to train."),
    batch_size: int = typer.Option(128, "--batch-size", help="Trials per step."),
    lr: float = typer.Option(4e-3, "--lr", help="Initial learning rate."),
    kl_warmup: int = typer.Option(80, "--kl-warmup", help="Epochs over which the KL and L2 "
                                  "penalties ramp up from 0."),
    gen_dim: int = typer.Option(100, "--gen-dim", help="Generator units."),
    fac_dim: int = typer.Option(40, "--fac-dim", help="Factors."),
    ic_dim: int = typer.Option(64, "--ic-dim", help="Initial-condition dimension."),
    ic_enc_dim: int = typer.Option(64, "--ic-enc-dim", help="Initial-condition encoder units."),
    con_dim: int = typer.Option(64, "--con-dim", help="Controller units (0: no controller)."),
    ci_enc_dim: int = typer.Option(64, "--ci-enc-dim", help="Controller-input encoder units."),
    co_dim: int = typer.Option(1, "--co-dim", help="Inferred inputs (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted fit."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="A progress bar."),
):
    """Fit LFADS to a data file; the folder gets the model (model.safetensors), its history,
    checkpoints and a copy of the data (data.h5) for `rnnlab lfads evaluate`."""
    import jax

    from ..lfads import LFADS, fit, read_hdf5, write_hdf5
    from ..training import graceful_interrupts

    for name, val in (("--epochs", epochs), ("--batch-size", batch_size)):
        _positive(name, val)
    _positive("--lr", lr, integer=False)
    dataset = _read(data)
    copy = out / DATA_FILE
    if copy.exists() and not resume:
        raise CLIError(f"{out} already holds an LFADS fit; add --resume to continue it or "
                       "pick another --out")
    if resume and copy.exists():
        dataset = read_hdf5(copy)  # the data the fit started with
    if con_dim == 0 or co_dim == 0:
        con_dim = co_dim = ci_enc_dim = 0
    k_model, k_fit = jax.random.split(jax.random.PRNGKey(seed))
    model = LFADS(dataset.n_neurons, key=k_model, n_heldout=dataset.n_heldout,
                  ext_input_dim=dataset.ext_dim, gen_dim=gen_dim, fac_dim=fac_dim,
                  ic_dim=ic_dim, ic_enc_dim=ic_enc_dim, con_dim=con_dim,
                  ci_enc_dim=ci_enc_dim, co_dim=co_dim)
    if not copy.exists():
        write_hdf5(copy, dataset)
    n_train = len(dataset.train_inds)
    from .._interrupt import TrainingInterrupted
    from ..lfads import FitDiverged

    try:
        with graceful_interrupts():
            result = fit(model, dataset, key=k_fit, max_epochs=epochs,
                         batch_size=min(batch_size, n_train), learning_rate=lr,
                         kl_increase_epoch=kl_warmup, l2_increase_epoch=kl_warmup, out=out,
                         resume=resume, progress=progress)
    except FitDiverged as e:
        raise CLIError(f"{e} (the last checkpoint is in {out}/checkpoints)") from None
    except TrainingInterrupted as e:
        import shlex

        from . import current_argv

        args = [a for a in current_argv() if a != "--resume"]
        typer.echo(f"rnnlab: LFADS fit interrupted after {e.step} epochs; the fit is in {out}. "
                   f"Continue it with:\n  rnnlab {shlex.join([*args, '--resume'])}", err=True)
        raise typer.Exit(130) from None
    last = result.history[-1] if result.history else {}
    valid = last.get("valid_recon")
    typer.echo(f"LFADS fit: {result.epochs} epochs, {result.steps} steps, stopped: "
               f"{result.stopped}" + ("" if valid is None else
                                      f", validation reconstruction {valid:.6g}"))
    typer.echo(f"written to {out}/ (evaluate with `rnnlab lfads evaluate {out}`)")


def evaluate_fit(folder: Path, *, n_samples: int = 50, seed: int = 0) -> dict:
    """Score the fit in ``folder`` (and the baselines) on its data; writes
    ``folder/evaluation.json`` and ``folder/posterior.safetensors``; returns the scores."""
    import jax
    import numpy as np

    from ..io._safe import atomic_write_json, write_safetensors
    from ..lfads import load, metrics, posterior_means, read_hdf5

    model_path, data_path = folder / "model.safetensors", folder / DATA_FILE
    for p, what in ((model_path, "the fitted model"), (data_path, "the fit's data")):
        if not p.is_file():
            raise CLIError(f"{folder} is not an LFADS fit folder: {p.name} ({what}) is "
                           "missing (make one with `rnnlab lfads fit DATA --out DIR`)")
    model, dataset = load(model_path), read_hdf5(data_path)
    key = jax.random.PRNGKey(seed)
    post = {s: posterior_means(model, dataset, key=jax.random.fold_in(key, i),
                               n_samples=n_samples, split=s)
            for i, s in enumerate(("train", "valid"))}
    has_inputs = post["train"].inferred_inputs.shape[-1] > 0
    scores = {"lfads": metrics.evaluate(
        dataset, post["train"].rates, post["valid"].rates,
        latents_train=post["train"].factors, latents_valid=post["valid"].factors,
        inputs_train=post["train"].inferred_inputs if has_inputs else None,
        inputs_valid=post["valid"].inferred_inputs if has_inputs else None)}
    scores.update(metrics.evaluate_baselines(dataset))
    result = {"fit": str(folder), "n_samples": n_samples, "seed": seed,
              "n_train": len(dataset.train_inds), "n_valid": len(dataset.valid_inds),
              **scores}
    atomic_write_json(folder / EVALUATION, result)
    p = post["valid"]
    write_safetensors(folder / POSTERIOR, {
        "rates": np.asarray(p.rates, np.float32), "factors": np.asarray(p.factors, np.float32),
        "inferred_inputs": np.asarray(p.inferred_inputs, np.float32),
        "valid_inds": np.asarray(dataset.valid_inds, np.int64),
    }, {"kind": "lfads_posterior", "split": "valid", "n_samples": n_samples, "seed": seed})
    return result


@lfads_app.command("evaluate")
def evaluate_cmd(
    folder: Path = typer.Argument(..., help="A fit folder made by `rnnlab lfads fit`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    samples: int = typer.Option(50, "--samples", help="Posterior samples averaged."),
    seed: int = typer.Option(0, "--seed", help="Seed of the posterior samples."),
):
    """Rates, latents and inputs of the fit against the data's truth (rate, state and input
    R^2), bits per spike (co-bps with held-out neurons), cycle consistency, next to Gaussian
    smoothing and smoothing + PCA on the same data; writes DIR/evaluation.json."""
    _positive("--samples", samples)
    result = evaluate_fit(folder, n_samples=samples, seed=seed)
    if as_json:
        typer.echo(json.dumps(result))
        return
    methods = [m for m in ("lfads", "smoothing", "smoothing+pca") if m in result]
    keys = []
    for m in methods:
        keys += [k for k in result[m] if k not in keys]
    typer.echo(f"{'metric (validation)':<22}" + "".join(f"{m:>15}" for m in methods))
    for k in keys:
        typer.echo(f"{k:<22}" + "".join(
            f"{result[m][k]:>15.4g}" if k in result[m] else f"{'-':>15}" for m in methods))
    typer.echo(f"written to {folder / EVALUATION}")



@lfads_app.command("report")
def report_cmd(
    folder: Path = typer.Argument(..., help="A fit folder evaluated by `rnnlab lfads "
                                  "evaluate`."),
    out: Optional[Path] = typer.Option(None, "--out",
                                       help="Where to write (default DIR/report.html)."),
):
    """The LFADS page: one self-contained HTML file with the fit's scores next to the
    baselines, inferred and true rates, factors in principal components, inferred inputs."""
    from ..report import write_lfads_report

    if not (folder / EVALUATION).is_file():
        raise CLIError(f"{folder / EVALUATION} is missing: run `rnnlab lfads evaluate "
                       f"{folder}` first")
    typer.echo(f"written to {write_lfads_report(folder, out=out)}")
