"""`make demo` runs examples/demo.py: run it end to end, as a user would, and read its story.

The demo checks its own outcomes and exits 1 naming the step where one is missing; this test
runs it in a fresh temporary folder and asserts the lines that say each outcome happened.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# The demo trains models, serves one and runs three pipelines through ~40 CLI processes (one
# to two minutes): in the heavy group, it runs after the Ray tests on their worker, not beside.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray"), pytest.mark.timeout(600)]

OUTCOMES = [
    "✓ the pipeline registered wine-classifier@1",
    "✓ 7 of 8 tasks came from the cache; only validate ran again",
    "✓ nothing new was registered: the result is still wine-classifier@1",
    "✓ two models trained: LogisticRegression and RandomForestClassifier",
    "is registered as wine-classifier@1",
    "for wine-classifier@1 -> production is pending",
    "✓ alice's self-approval was refused (exit 4)",
    "✓ bob approved: wine-classifier@production is wine-classifier@1",
    "✓ lineage leads from production back to the dataset wine@2",
    "✓ 180 requests answered, 180 labels sent back and stored",
    "✓ /metrics counts the 180 answered predictions",
    "✓ the server stopped on SIGTERM",
    "✓ drift found: 13 of 13 features drifted in 180 logged rows",
    "✓ the alert fired: drift_share > 0.3",
    "✓ the retraining pipeline registered wine-classifier@2",
    "✓ a request for wine-classifier@2 -> production is pending an approver",
    "demo finished: every outcome checked",
]


def test_demo_runs_end_to_end_and_every_outcome_happens(tmp_path: Path) -> None:
    before = sorted(p.name for p in EXAMPLES.iterdir())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    # The demo makes its project with tempfile, under TMPDIR: here, never in the repository.
    env |= {"TMPDIR": str(tmp_path), "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=540,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert f"shipyard demo in {tmp_path}" in output
    missing = [line for line in OUTCOMES if line not in output]
    assert not missing, f"missing from the demo's output: {missing}\n{output[-6000:]}"
    assert "demo failed" not in output
    assert sorted(p.name for p in EXAMPLES.iterdir()) == before
    assert not list(tmp_path.glob("shipyard-demo-*")), "the demo left its project behind"
