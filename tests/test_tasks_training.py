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
# Every rule reaches its threshold with the settings it recommends (relu units for the
# delayed dm and dms rules; docs/tasks.md). The 20-rule `yang19` multitask is left out: its
# recommended training (Yang's 256 units, up to 40000 steps) takes hours on a CPU; measured
# with a 4000-step cap it reaches 0.91 pooled but 9 of its 20 rules are still below 0.9
# (docs/tasks.md).
_NOT_REACHED: set[str] = set()
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
