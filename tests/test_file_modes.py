"""Files a lab can share: everything rnnlab writes gets the mode the user's umask gives any new
file (rnnlab's atomic writer used to leave its temporary file's 0600)."""

import os
import stat
import subprocess
import sys

import jax
import numpy as np

import rnnlab as rl
from rnnlab.io import atomic_write_json, write_safetensors


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_atomic_writes_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        for mask, expected in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
            os.umask(mask)
            d = tmp_path / f"m{mask:o}"
            atomic_write_json(d / "a.json", {"x": 1})
            write_safetensors(d / "b.safetensors", {"w": np.zeros(3)}, {"kind": "test"})
            rl.save(d / "m.safetensors", rl.VanillaRNN(2, 3, 1, key=jax.random.PRNGKey(0)))
            for name in ("a.json", "b.safetensors", "m.safetensors"):
                assert _mode(d / name) == expected, (name, oct(mask))
    finally:
        os.umask(old)


def test_replacing_a_file_keeps_its_mode(tmp_path):
    f = tmp_path / "shared.json"
    atomic_write_json(f, {"x": 1})
    os.chmod(f, 0o664)
    old = os.umask(0o077)
    try:
        atomic_write_json(f, {"x": 2})
    finally:
        os.umask(old)
    assert _mode(f) == 0o664


def test_a_whole_run_is_readable_by_the_group(tmp_path):
    # train, analyse and draw in a child process with umask 027: every file 0640
    run = tmp_path / "run"
    code = (
        "import os, sys; os.umask(0o027); from rnnlab.cli import main; "
        f"assert main(['train', 'flipflop', '--out', {str(run)!r}, '--hidden', '8', "
        "'--steps', '2', '--eval-every', '1', '--no-progress']) == 0; "
        f"assert main(['analyze', {str(run)!r}, '--n-initial', '32', '--n-trials', '8', "
        "'--topology-starts', '2', '--no-progress']) == 0"
    )
    env = {**os.environ, "RNNLAB_COMPILE_CACHE": "0"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)
    files = [p for p in run.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"config.json", "history.jsonl", "model.safetensors",
                                       "checkpoint.safetensors", "fixed_points.safetensors",
                                       "summary.json"}
    bad = [(str(p.relative_to(run)), oct(_mode(p))) for p in files if _mode(p) != 0o640]
    assert not bad, bad
    dirs = [p for p in run.rglob("*") if p.is_dir()]
    assert all(_mode(p) == 0o750 for p in dirs), [(str(p), oct(_mode(p))) for p in dirs]
