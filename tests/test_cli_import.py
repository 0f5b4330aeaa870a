"""`rnnlab import`: a weight file becomes a run directory that `rnnlab analyze` works on."""

import json
import pickle

import jax
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.cli import main

N = 8


def _trainrnnbrain_file(path, n_in=3, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, W_rec=1.2 * rng.normal(size=(N, N)) / np.sqrt(N),
             W_inp=rng.normal(size=(N, n_in)), W_out=rng.normal(size=(n_out, N)),
             bias_rec=0.1 * rng.normal(size=N))


def test_import_then_analyze(tmp_path, capsys):
    src, run = tmp_path / "net.npz", tmp_path / "run"
    _trainrnnbrain_file(src)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"dt": 10, "tau": 100, "activation": "tanh"}))
    assert main(["import", str(src), "--format", "trainrnnbrain", "--out", str(run),
                 "--task", "flipflop", "--config", str(cfg), "--no-score"]) == 0
    printed = capsys.readouterr().out
    assert "imported CTRNN (rate form): 3 inputs, 8 units, 3 outputs" in printed
    config = json.loads((run / "config.json").read_text())
    assert config["task"]["name"] == "flipflop"
    assert config["imported"]["format"] == "trainrnnbrain"
    # the run's model is the imported network
    the_run = rl.Run.open(run)
    direct = rl.from_file(src, config=cfg)
    us = jax.random.normal(jax.random.PRNGKey(0), (20, 3))
    np.testing.assert_array_equal(rl.simulate(the_run.model, us).outputs,
                                  rl.simulate(direct, us).outputs)
    assert main(["analyze", str(run), "--n-initial", "48", "--n-trials", "8",
                 "--no-slow", "--topology-starts", "2", "--no-progress",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["total"]["n_points"] >= 1
    assert (run / "analysis" / "summary.json").is_file()


def test_import_mistakes_are_one_line(tmp_path, capsys):
    src = tmp_path / "net.npz"
    _trainrnnbrain_file(src, n_in=2)
    args = ["import", str(src), "--format", "trainrnnbrain", "--dt", "1", "--tau", "10"]
    # the task's sizes must match the network's
    assert main([*args, "--out", str(tmp_path / "a"), "--task", "flipflop"]) == 2
    assert "has 3 inputs and 3 outputs, the imported network 2 and 3" in capsys.readouterr().err
    assert not (tmp_path / "a" / "config.json").exists()
    assert main([*args[:2], "--format", "keras", "--out", str(tmp_path / "b")]) == 2
    assert "--format 'keras' is not known" in capsys.readouterr().err
    # a pickle is refused with the conversion
    (tmp_path / "net.pt").write_bytes(pickle.dumps({"W_rec": [[1.0]]}))
    assert main(["import", str(tmp_path / "net.pt"), "--format", "auto", "--out",
                 str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "never unpickles" in err and "safetensors.torch.save_file(" in err
    # no time step anywhere
    assert main(["import", str(src), "--format", "auto", "--out", str(tmp_path / "d")]) == 2
    assert "pass dt= and tau=" in capsys.readouterr().err
    # trainRNNbrain's softplus (log(1 + exp(5 x))) has no rnnlab name: no run, and why
    assert main([*args, "--activation", "softplus", "--out", str(tmp_path / "f")]) == 2
    assert "log(1 + exp(5 x))" in capsys.readouterr().err
    assert not (tmp_path / "f" / "config.json").exists()
    # trainRNNbrain's cubic leak makes a FunctionModel, which has no file format
    (tmp_path / "p.json").write_text(json.dumps(
        {"W_rec": np.eye(N).tolist(), "W_inp": np.ones((N, 3)).tolist(),
         "W_out": np.ones((3, N)).tolist(), "dt": 1, "tau": 10, "gamma": 0.1}))
    assert main(["import", str(tmp_path / "p.json"), "--format", "auto", "--out",
                 str(tmp_path / "g")]) == 2
    assert "cubic leak" in capsys.readouterr().err
    # nor written into a directory of other files
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "notes.txt").write_text("mine")
    assert main([*args, "--out", str(tmp_path / "h")]) == 2
    assert "non-empty directory that is not a run" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["notes.txt"]
    # an existing run is not overwritten
    assert main([*args, "--out", str(tmp_path / "e")]) == 0
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "e")]) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.slow
def test_import_then_plot_and_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    src, run = tmp_path / "net.npz", tmp_path / "run"
    rng = np.random.default_rng(3)
    signs = np.r_[np.ones(6), -np.ones(2)]
    w = np.abs(rng.normal(size=(N, N))) / np.sqrt(N) * signs[None, :]
    np.fill_diagonal(w, 0.0)
    np.savez(src, W_rec=w, W_in=rng.normal(size=(N, 3)), W_out=rng.normal(size=(3, N)),
             Dale_rec=np.diag(signs), Dale_out=np.diag(np.maximum(signs, 0)),
             rec_connectivity=1 - np.eye(N))
    assert main(["import", str(src), "--format", "psychrnn", "--out", str(run), "--task",
                 "flipflop", "--config", '{"dt": 10, "tau": 100, "dale_ratio": 0.75}']) == 0
    assert "Dale's law" in capsys.readouterr().out
    assert main(["plot", str(run), "--n-trials", "8"]) == 0
    assert (run / "figures" / "connectivity.png").is_file()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()
