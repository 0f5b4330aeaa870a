"""Test-session settings."""

import gc
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

# The CLI turns on JAX's persistent compilation cache in a user folder; tests that call the
# CLI in-process or start it as a child must not use that folder (test_cli_start.py tests it
# in a child process with its own folder).
os.environ.setdefault("RNNLAB_COMPILE_CACHE", "0")

# XLA's compile of the programs the tests build (hundreds per file, most of them tiny) is most
# of the suite's time: on tests/test_model_contract.py 111 s of 139 s were LLVM code generation.
# The tests compile without LLVM's optimisation passes (--xla_backend_optimization_level=0):
# the compiled code runs slower, which the small test programs do not feel, and that file then
# took 74 s. They also compile each fusion with XLA's elemental IR emitter instead of its MLIR
# fusion emitters (--xla_cpu_use_fusion_emitters=false), which build an MLIR context and a pool
# of compilers for every program: XLA's backend compile of 377 small programs took 3.6-4.8 s
# instead of 7.9-9.9 s, and test_training_audit, test_tasks_library and test_tasks_curriculum
# in one process took 93 s wall and 92 s CPU instead of 158 s and 183 s (benchmarks/RESULTS.md).
# The results can differ from XLA's default code in their last bits, so the tests that compare
# with bits saved under the default flags (marker `default_xla`, below) run in a child process
# with those flags; the other bit-exact tests compare two runs under the same flags (same bytes
# across processes, resume equals uninterrupted). RNNLAB_TEST_XLA_OPT=1 runs the whole suite
# with XLA's default flags, as users run it. Set here, before any test starts a JAX backend;
# inherited by the xdist workers and the CLI subprocesses.
_TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
if os.environ.get("RNNLAB_TEST_XLA_OPT") != "1":
    _given = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = " ".join(
        [_given] + [f for f in _TEST_XLA_FLAGS if f.split("=")[0] not in _given]
    ).strip()
# (the xdist workers inherit the flags from the controller's environment)
_FAST_COMPILE = os.environ.get("RNNLAB_TEST_XLA_OPT") != "1" and any(
    f in os.environ.get("XLA_FLAGS", "").split() for f in _TEST_XLA_FLAGS
)

# Each test process keeps JAX's persistent compilation cache in a folder of its own (made in
# `pytest_configure`, removed at its end), which the CLI it runs in-process and the CLI
# processes it starts use too (RNNLAB_CACHE_DIR, RNNLAB_COMPILE_CACHE=1): a program compiled
# again after the compiled programs were dropped (`_drop_compiled_programs`, after every file
# and above the memory bound) or by another command of the same test is read back instead.
# On test_training_audit, test_fast_grad and test_models_discrete in one process: 132 s
# instead of 156 s (144 s of CPU instead of 177 s). One folder per process, not shared: JAX
# writes entries without a lock (a process can read a program another is still writing) or,
# with a size limit, locks the folder and scans every entry on each write (that stalled both
# workers of the whole suite at 60% busy). Tests whose CLI processes run beside the test, or
# are killed mid-work, set RNNLAB_COMPILE_CACHE=0 for them. RNNLAB_TEST_COMPILE_CACHE=0 turns
# the folders off.
_TEST_CACHE_DIR: str | None = None

# Tests that compare with bits saved by an earlier release under XLA's default flags (marker
# `default_xla`) run in a child pytest with those flags, one child per test file, and report
# here what they did there.
_CHILD_OUTCOMES: dict[str, dict[str, str]] = {}


def pytest_configure(config):
    global _TEST_CACHE_DIR
    if os.environ.get("RNNLAB_TEST_COMPILE_CACHE", "1") == "1":
        import tempfile

        # a fresh folder in every process (xdist workers inherit the controller's environment)
        _TEST_CACHE_DIR = tempfile.mkdtemp(prefix="rnnlab-test-cache-")
        os.environ["RNNLAB_CACHE_DIR"] = _TEST_CACHE_DIR
        os.environ["RNNLAB_COMPILE_CACHE"] = "1"
        from rnnlab.cli import enable_compile_cache

        enable_compile_cache()
    config.addinivalue_line(
        "markers", "default_xla: compares with bits saved under XLA's default optimisation; "
        "runs in a child process with XLA's default flags when the suite compiles fast")


def pytest_unconfigure(config):
    if _TEST_CACHE_DIR is not None:
        import shutil

        shutil.rmtree(_TEST_CACHE_DIR, ignore_errors=True)


def _run_file_with_default_xla(item) -> dict[str, str]:
    path = str(item.path)
    if path in _CHILD_OUTCOMES:
        return _CHILD_OUTCOMES[path]
    ids = [i.nodeid for i in item.session.items
           if str(i.path) == path and i.get_closest_marker("default_xla")]
    import tempfile

    fd, name = tempfile.mkstemp(prefix="rnnlab-default-xla-", suffix=".xml")
    os.close(fd)
    report = Path(name)
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                     if f not in _TEST_XLA_FLAGS)
    env = {**os.environ, "RNNLAB_TEST_XLA_OPT": "1", "XLA_FLAGS": flags}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         f"--junitxml={report}", *ids],
        cwd=item.config.rootpath, env=env, capture_output=True, text=True, timeout=1800,
    )
    outcomes = {"_log": run.stdout[-4000:] + run.stderr[-4000:]}
    try:
        cases = list(ET.parse(report).getroot().iter("testcase"))
    except ET.ParseError:  # the child died before writing its report: its log says why
        cases = []
    finally:
        report.unlink(missing_ok=True)
    for case in cases:
        name = case.get("name")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        outcomes[name] = "passed" if bad is None and case.find("skipped") is None else (
            "skipped" if bad is None else (bad.get("message") or "failed") + "\n" + (bad.text or ""))
    _CHILD_OUTCOMES[path] = outcomes
    return outcomes


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if not (_FAST_COMPILE and pyfuncitem.get_closest_marker("default_xla")):
        return None
    outcomes = _run_file_with_default_xla(pyfuncitem)
    got = outcomes.get(pyfuncitem.name)
    if got is None:
        pytest.fail(f"the child run with XLA's default flags did not report {pyfuncitem.name}:\n"
                    + outcomes["_log"])
    if got == "skipped":
        pytest.skip("skipped in the child run with XLA's default flags")
    if got != "passed":
        pytest.fail(f"with XLA's default flags (child process): {got}", pytrace=False)
    return True


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs and traced functions after each test file. A worker runs
    dozens of files, each compiling programs (other shapes, other models) that later files do
    not reuse; kept, they grew one xdist worker past 4 GB. On four fixed-point and task files
    in one process: 1.56 GB peak with this, 2.38 GB without, and no slower."""
    yield
    if os.environ.get("RNNLAB_TEST_KEEP_CACHES") != "1":
        _drop_compiled_programs()


def _drop_compiled_programs() -> None:
    import jax

    jax.clear_caches()
    gc.collect()
    if os.environ.get("RNNLAB_TEST_TRIM", "1") == "1":
        _return_freed_memory()


# A worker's resident size after a test, above which the compiled programs are dropped there
# and then rather than at the end of the file (MiB; 0: never). Most files stay below it and
# keep their programs from test to test; the heaviest are held near it. On test_fast_grad,
# test_training_audit and test_models_discrete in one process (load average 5): peaks 1.70,
# 1.74 and 1.57 GB without the limit, 0.88, 1.17 and 1.01 GB with it, for 171 s of CPU
# instead of 149 s (the programs a later test of the file would have reused are compiled
# again).
_RSS_LIMIT_MIB = float(os.environ.get("RNNLAB_TEST_RSS_LIMIT_MB", "1200"))


def _resident_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # not Linux: no limit
        return 0.0


@pytest.fixture(autouse=True)
def _bound_resident_memory():
    yield
    if _RSS_LIMIT_MIB > 0 and _resident_mib() > _RSS_LIMIT_MIB:
        _drop_compiled_programs()


def _return_freed_memory() -> None:
    # glibc keeps freed blocks in its arenas: hand them back to the OS, so that the worker's
    # resident size follows what it holds, not its high-water mark
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl): nothing to do
        pass
