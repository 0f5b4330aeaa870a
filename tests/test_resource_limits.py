"""Resource limits (issue 17): sizes a user asks for are checked against the machine's memory
before anything is allocated (refused with the estimate and the machine's memory, leaving
nothing behind), and sizes a file asks for are bounded."""

import json
import os
import resource

import jax
import pytest

import rnnlab as rl
from rnnlab.cli import main
from rnnlab.io._resources import (
    ResourceError,
    analysis_bytes,
    check_memory,
    machine_memory,
    training_bytes,
)
from rnnlab.runs import Run, RunError


def test_machine_memory_agrees_with_sysconf():
    available, total = machine_memory()
    pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < available <= total
    assert abs(total - pages) <= 0.01 * pages  # /proc/meminfo and sysconf: the same RAM


def test_estimates_scale_as_the_arrays_they_count():
    # the weights dominate for a big network, the trials for long ones
    small, big = training_bytes(3, 100, 3, 1, 1), training_bytes(3, 1000, 3, 1, 1)
    assert 80 < big / small <= 100  # ~ n_hidden^2 once the weights dominate
    assert training_bytes(3, 64, 3, 200, 64) > training_bytes(3, 64, 3, 100, 64)
    # 100000 units: 8 float32 copies of a 10^10-entry matrix, at least 320 GB
    assert training_bytes(3, 100_000, 3, 100, 64) >= 8 * 4 * 1e10
    assert analysis_bytes(64, 10**9) > 1e12


def test_check_memory_names_the_estimate_and_the_machine():
    check_memory(1e6, "a small thing")
    with pytest.raises(ResourceError, match=r"needs about .* GiB .*available of .* GiB"):
        check_memory(1e15, "a huge thing")


@pytest.mark.parametrize("args", [
    ["--hidden", "100000"],
    ["-p", "n_bits=100000"],
    ["--batch-size", "1000000000"],
])
def test_train_refuses_what_does_not_fit_and_leaves_nothing(tmp_path, capsys, args):
    out = tmp_path / "run"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = main(["train", "flipflop", *args, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert "needs about" in err and "available of" in err
    # refused before allocating: the peak memory of this process did not grow by a GB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 1_000_000
    assert not out.exists() or not any(out.iterdir())
    # nothing left behind blocks a plain rerun with sensible sizes (checked without training)
    Run.create(out, task=rl.tasks.FlipFlop(), model=None)


def _run_dir(tmp_path, task_params=None):
    """A run directory by hand: an untrained model and its config (no training needed)."""
    task = rl.tasks.FlipFlop(n_bits=2, n_steps=20)
    model = rl.CTRNN(task.n_in, 6, task.n_out, key=jax.random.PRNGKey(0))
    d = tmp_path / "run"
    d.mkdir()
    rl.save(d / "model.safetensors", model)
    params = {**task.config(), **(task_params or {})}
    (d / "config.json").write_text(json.dumps({"task": {"name": "flipflop", "params": params}}))
    return d


def test_analyze_refuses_a_search_that_does_not_fit(tmp_path, capsys):
    d = _run_dir(tmp_path)
    code = main(["analyze", str(d), "--n-initial", "1000000000", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs about" in err and "--n-initial" in err and "\n" not in err
    assert not (d / "analysis").exists()


def test_evaluate_refuses_a_batch_that_does_not_fit(tmp_path, capsys):
    d = _run_dir(tmp_path)
    code = main(["evaluate", str(d), "--batch-size", "1000000000"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs about" in err and "--batch-size" in err and "\n" not in err


@pytest.mark.parametrize("params, match", [
    ({"n_steps": 1_000_000}, "steps"),
    ({"n_bits": 100_000}, "inputs or outputs"),
    ({"n_steps": "many"}, "cannot be rebuilt"),
])
def test_a_run_file_cannot_ask_for_huge_trials(tmp_path, params, match):
    d = _run_dir(tmp_path, params)
    with pytest.raises(RunError, match=match) as info:
        Run.open(d).task
    assert str(d / "config.json") in str(info.value) and "\n" not in str(info.value)
