"""Run directories (issue 17): an OS lock while a run is written (a killed holder's lock is
taken over), two writers into one --out never mix, dangerous targets are refused, and a
start that failed leaves nothing that blocks a rerun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest

import rnnlab as rl
from rnnlab.io._lock import RunLock, RunLockedError
from rnnlab.runs import Run, RunError

TASK = rl.tasks.FlipFlop(n_bits=2, n_steps=20)

HOLD = ("import sys, time; from rnnlab.io._lock import RunLock\n"
        "with RunLock(sys.argv[1]):\n"
        "    print('held', flush=True); time.sleep(600)\n")


def _hold(path):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_lock_refuses_a_second_writer_and_is_taken_over_after_a_kill(tmp_path):
    run = tmp_path / "run"
    holder = _hold(run)
    try:
        with pytest.raises(RunLockedError, match=f"process {holder.pid}"):
            with RunLock(run):
                pass
        # Run.train refuses too, before writing anything
        the_run = Run.create(run, task=TASK, model=rl.CTRNN(2, 4, 2, key=jax.random.PRNGKey(0)))
        with pytest.raises(RunLockedError):
            the_run.train(key=jax.random.PRNGKey(0), steps=1, progress=False)
        assert not (run / "config.json").exists()
        # and so does an ensemble writing into it
        models = [rl.CTRNN(2, 4, 2, key=jax.random.PRNGKey(i)) for i in range(2)]
        with pytest.raises(RunLockedError, match=f"process {holder.pid}"):
            rl.train_ensemble(models, TASK, key=jax.random.PRNGKey(0), steps=1,
                              out_dir=run, progress=False)
        assert not (run / "config.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    # the OS dropped the killed process's lock: the next writer takes it over
    with RunLock(run):
        with RunLock(run):  # re-entrant within a process
            pass


def _train_cmd(out, seed):
    return [sys.executable, "-c", "import sys; from rnnlab.cli import main; sys.exit(main())",
            "train", "flipflop", "-p", "n_bits=2", "-p", "n_steps=20", "--hidden", "6",
            "--steps", "10", "--eval-every", "5", "--batch-size", "8", "--seed", str(seed),
            "--out", str(out), "--no-progress"]


@pytest.mark.slow  # two CLI processes, each importing JAX and training: ~35 s on 2 cores
def test_two_trainings_into_one_out_never_mix(tmp_path):
    """Two `rnnlab train` processes started together on one --out: one trains, the other is
    refused with one line (the directory is locked, or already holds a run); the files are all
    the winner's."""
    out = tmp_path / "run"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "RNNLAB_COMPILE_CACHE": "0"}
    procs = [subprocess.Popen(_train_cmd(out, seed), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(*p.communicate(timeout=600)[::-1], p.returncode) for p in procs]
    results = [(code, out_, err) for err, out_, code in results]
    codes = [r[0] for r in results]
    assert sorted(codes) == [0, 2], results
    winner = codes.index(0)
    loser_err = results[1 - winner][2].strip()
    assert loser_err.count("\n") == 0 and "rnnlab: error:" in loser_err
    assert "being written by another process" in loser_err or "already holds a run" in loser_err
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == (1, 2)[winner]
    # the model, history and checkpoint come from the same training as config.json
    model = rl.load(out / "model_final.safetensors")
    run = Run.open(out)
    assert run.history[-1]["step"] == 10 and model.n_hidden == 6
    ck = rl.io.read_safetensors(out / "checkpoints" / "checkpoint.safetensors")[1]
    assert ck["fingerprint"]["training"]["key"] == config["training"]["key"]


@pytest.mark.parametrize("target", ["", "/"])
def test_dangerous_targets_are_refused(target):
    with pytest.raises(RunError, match="empty|root"):
        Run.create(target, task=TASK, model=None)
    with pytest.raises(ValueError, match="empty or the file-system root"):  # the library too
        rl.train(rl.CTRNN(2, 4, 2, key=jax.random.PRNGKey(0)), TASK, key=jax.random.PRNGKey(0),
                 steps=1, out_dir=target, progress=False)
    with pytest.raises(ValueError, match="empty or the file-system root"):
        rl.train_ensemble([rl.CTRNN(2, 4, 2, key=jax.random.PRNGKey(0))], TASK,
                          key=jax.random.PRNGKey(0), steps=1, out_dir=target, progress=False)


def test_non_run_directories_and_links_to_them_are_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(RunError, match="not a run.*thesis.tex"):
        Run.create(home, task=TASK, model=None)
    link = tmp_path / "link"
    link.symlink_to(home)
    with pytest.raises(RunError, match="a link to"):
        Run.create(link, task=TASK, model=None)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunError, match="is a file"):
        Run.create(tmp_path / "afile" / "sub", task=TASK, model=None)
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]


def test_a_failed_start_does_not_block_a_rerun(tmp_path):
    """What a start that failed before training leaves (config.json, the lock file, a
    temporary file) is not 'a run': the plain rerun proceeds."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / ".lock").write_text("123\n")
    (out / ".history.jsonl.abc.tmp").write_text("")
    Run.create(out, task=TASK, model=None)  # accepted, and its lock is free
    with RunLock(out):
        pass
    # once a run has trained there (a history, a model or a checkpoint), it is a run
    (out / "history.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    with pytest.raises(RunError, match="already holds a run"):
        Run.create(out, task=TASK, model=None)



def test_cli_refuses_dangerous_targets_in_one_line(tmp_path, capsys):
    from rnnlab.cli import main

    (tmp_path / "afile").write_text("x")
    for out in ["", str(tmp_path / "afile" / "sub"), "x" * 300]:
        capsys.readouterr()
        code = main(["train", "flipflop", "--hidden", "4", "--steps", "1", "--out", out,
                     "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code in (1, 2) and err.startswith("rnnlab: error:") and "\n" not in err, err
    assert not any(len(n) >= 300 for n in os.listdir("."))
