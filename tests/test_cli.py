"""The `rnnlab` command: train, evaluate, resume, tasks, and one-line errors."""

import json

import pytest

import rnnlab as rl
from rnnlab.cli import main


def test_tasks_lists_every_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in rl.tasks.available():
        assert name in out
    assert main(["tasks", "flipflop"]) == 0
    assert "n_bits = 3" in capsys.readouterr().out


def test_train_flipflop_from_defaults_reaches_99_percent(tmp_path, capsys):
    out = tmp_path / "ff"
    assert main(["train", "flipflop", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "final accuracy" in printed and str(out) in printed
    for name in ("config.json", "model.safetensors", "history.jsonl",
                 "checkpoints/checkpoint.safetensors"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 0 and config["version"] == rl.__version__
    assert main(["evaluate", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["accuracy"] >= 0.99
    assert scores["loss"] < 0.05


def test_train_options_resume_and_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "sine_wave", "--out", str(out), "--hidden", "16", "--steps", "20",
            "--eval-every", "10", "--dale", "--no-autapses", "--noise", "0.05", "--seed", "3",
            "--no-progress", "--activation", "retanh"]
    assert main(args) == 0
    model = rl.load(out / "model.safetensors")
    assert model.dale and not model.autapses and model.noise_std == 0.05
    assert model.activation_name == "retanh"
    capsys.readouterr()
    # same command again is refused (nothing is overwritten) ...
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    # ... and --resume with more steps continues the run
    assert main(args[:7] + ["40"] + args[8:] + ["--resume"]) == 0
    hist = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [10, 20, 30, 40]
    assert main(["evaluate", str(out)]) == 0
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "nope"], "unknown task"),
        (["train", "flipflop", "--hidden", "abc"], "--hidden"),
        (["train", "flipflop", "--hidden", "0", "--out", "X"], "n_hidden"),
        (["train", "flipflop", "--lr", "-1", "--out", "X"], "learning_rate"),
        (["train", "flipflop", "--activation", "cube", "--out", "X"], "activation"),
        (["train", "flipflop", "--model", "transformer", "--out", "X"], "--model"),
        (["train", "flipflop", "-p", "n_bitz=3", "--out", "X"], "n_bitz"),
        (["evaluate", "/nonexistent/run"], "not a run directory"),
        (["tasks", "nope"], "unknown task"),
    ],
)
def test_bad_arguments_give_one_line_errors(args, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("model", ["vanilla", "gru", "lstm"])
@pytest.mark.parametrize("option", [["--tau", "50"], ["--form=rate"],
                                    ["--allow-negative-rates"]])
def test_ctrnn_only_options_with_another_model_are_an_error(tmp_path, capsys, model, option):
    """An option the chosen model does not have is refused by name, before anything is made
    (it would otherwise be accepted and do nothing)."""
    out = tmp_path / "run"
    rc = main(["train", "flipflop", "--model", model, *option, "--out", str(out),
               "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{option[0].split('=')[0]} applies only to --model ctrnn" in err
    assert not out.exists()
