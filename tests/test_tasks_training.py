"""Slow checks: a default network trained with `rnnlab train NAME` reaches each task's
documented accuracy threshold on fresh trials (`rnnlab evaluate`)."""

import json

import pytest

from rnnlab import tasks as T
from rnnlab.cli import main

CLASSIC = [
    "integrator", "angular_integrator", "binary_decision", "context_decision_making",
    "delayed_discrimination", "go_no_go", "delayed_match_to_sample", "memory_number",
    "memory_anti_number", "memory_anti_angle",
]
# Measured (docs/tasks.md): a default 64-unit network does not learn delaydm1 in 3000 steps
# (0.23 at lr 1e-2, 0.38 at 5e-3), nor dmsnogo (0.79); the other delayed-dm rules were not
# measured in time.
_NOT_REACHED = {"yang19.delaydm1", "yang19.dmsnogo"}
YANG = [
    pytest.param(n, marks=pytest.mark.xfail(reason="not reached by a default network",
                                            strict=False)) if n in _NOT_REACHED else n
    for n in (f"yang19.{r}" for r in T.YANG19_RULES)
]


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIC + YANG)
def test_default_network_reaches_threshold(name, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", name, "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["accuracy"] >= T.make(name).target_accuracy
