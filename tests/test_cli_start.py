"""The `rnnlab` command's start: no JAX import until a command needs it, and JAX's persistent
compilation cache in a user folder (on by default, off with --no-compile-cache)."""

import os
import subprocess
import sys

from rnnlab.cli import main

CODE = "import sys; from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))"


def _rnnlab(args, env):
    return subprocess.run([sys.executable, "-c", CODE, *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_importing_the_cli_imports_no_jax():
    code = ("import sys, rnnlab, rnnlab.cli; "
            "print(sorted(m for m in ('jax', 'equinox', 'numpy', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    # names still resolve, on first use
    code = "import rnnlab as rl; print(rl.CTRNN.__name__, rl.runs.Run.__name__, 'tasks' in dir(rl))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["CTRNN", "Run", "True"]



def test_listing_the_tasks_imports_no_jax_and_equals_the_registry():
    """`rnnlab tasks` lists from a static table (no JAX import, so it starts in well under a
    second); the table is the registry's names and descriptions, in its order."""
    from rnnlab import tasks
    from rnnlab.cli._catalog import TASKS

    assert list(TASKS) == list(tasks.available())
    assert TASKS == {n: tasks.describe(n) for n in tasks.available()}
    code = ("import sys; from rnnlab.cli import main; rc = main(['tasks']); "
            "print('jax' in sys.modules, rc, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stderr.split() == ["False", "0"]
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert listed == list(TASKS)

def test_compile_cache_is_written_and_reused(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "flipflop", "--out", str(run), "--hidden", "8", "--steps", "2",
                 "--eval-every", "1", "--no-progress"]) == 0
    env = {**os.environ, "RNNLAB_CACHE_DIR": str(tmp_path / "cache"),
           "RNNLAB_COMPILE_CACHE": "1"}
    first = _rnnlab(["evaluate", str(run), "--json"], env)
    assert first.returncode == 0, first.stderr
    cached = sorted((tmp_path / "cache" / "jax").iterdir())
    assert cached, "no compiled program was cached"
    second = _rnnlab(["evaluate", str(run), "--json"], env)
    assert second.returncode == 0 and second.stdout == first.stdout  # same numbers from cache
    # off: nothing written
    env["RNNLAB_CACHE_DIR"] = str(tmp_path / "cache2")
    off = _rnnlab(["--no-compile-cache", "evaluate", str(run), "--json"], env)
    assert off.returncode == 0 and off.stdout == first.stdout
    assert not (tmp_path / "cache2").exists()


def test_version_and_project_files_agree():
    """`rnnlab --version` prints the package's version without importing JAX; the citation
    file and the changelog exist and name the same version; the licence is the metadata's."""
    from pathlib import Path

    import rnnlab

    code = ("import sys; from rnnlab.cli import main; rc = main(['--version']); "
            "print('jax' in sys.modules, rc, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == f"rnnlab {rnnlab.__version__}"
    assert out.stderr.split() == ["False", "0"]
    root = Path(__file__).resolve().parent.parent
    assert f'version: "{rnnlab.__version__}"' in (root / "CITATION.cff").read_text()
    assert f"## {rnnlab.__version__}" in (root / "CHANGELOG.md").read_text()
    assert (root / "LICENSE").read_text().startswith("MIT License")
    assert 'license = "MIT"' in (root / "pyproject.toml").read_text()


def test_the_program_ends_with_its_exit_code_and_all_its_output(tmp_path, capsys):
    """Run as the program (`python -m rnnlab`, as the `rnnlab` script runs it), the CLI
    ends with os._exit once the command is done: its output, piped, is the whole output of
    the same command run in-process, and its exit code is the command's, with and without
    JAX imported."""
    assert main(["tasks"]) == 0
    want = capsys.readouterr().out
    prog = [sys.executable, "-m", "rnnlab"]
    got = subprocess.run([*prog, "tasks"], capture_output=True, text=True, timeout=600)
    assert got.returncode == 0 and got.stdout == want
    bad = subprocess.run([*prog, "train", "no_such_task", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "rnnlab: error" in bad.stderr and "no_such_task" in bad.stderr
    run = tmp_path / "run"
    assert main(["train", "flipflop", "--out", str(run), "--hidden", "8", "--steps", "2",
                 "--eval-every", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    want = capsys.readouterr().out
    env = {**os.environ, "RNNLAB_COMPILE_CACHE": "0"}
    got = subprocess.run([*prog, "evaluate", str(run), "--json"], capture_output=True,
                         text=True, timeout=600, env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == want
