from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from typer.testing import Result

import shipyard

Invoke = Callable[..., Result]


def _alerts(root: Path, rule: str) -> None:
    config = root / "shipyard.toml"
    text = config.read_text()
    assert '# alerts = ""' in text  # the init template lists the setting, commented out
    config.write_text(text.replace('# alerts = ""', f"alerts = [{rule!r}]"))


@pytest.fixture
def monitored(cli: Invoke, tmp_path: Path) -> Path:
    """``prices@1`` trained on ``prices-data@1``, 40 logged rows of which 20 are shifted."""
    assert cli("init").exit_code == 0
    frame = pd.DataFrame({"x": [float(i % 17) for i in range(200)]})
    frame["y"] = frame["x"] * 2
    with shipyard.connect(tmp_path, user="alice") as project:
        dataset = project.datasets.add("prices-data", frame).version
        with project.runs.start_run("prices", capture=False) as run:
            run.use_dataset(dataset.ref)
            model = Ridge().fit(frame[["x"]], frame["y"])
            run.log_model(model, "prices", input_example=frame[["x"]][:3], onnx=False)
        with project.predictions.log(deployment_id="dep-1", name="prices") as log:
            for i in range(40):
                x = float(i % 17) + (50.0 if i >= 20 else 0.0)
                log.record(
                    request_id=f"r{i}",
                    at=time.time(),
                    version=1,
                    inputs=[{"x": x}],
                    outputs=[x * 2],
                    latency=0.003,
                )
    return tmp_path


def test_monitor_run_shows_drift_and_writes_the_html_report(cli: Invoke, monitored: Path) -> None:
    _alerts(monitored, "drift_share > 0.5")
    result = cli("monitor", "run", "prices@1", "--window", "1h", "--html", "report.html")
    assert result.exit_code == 0, result.output
    assert "ALERT" in result.output and "drift_share > 0.5" in result.output
    assert "x" in result.output
    assert "<svg" in (monitored / "report.html").read_text()
    listed = json.loads(cli("monitor", "history", "prices", "--json").output)
    assert [r["status"] for r in listed] == ["alert"]
    shown = json.loads(cli("monitor", "show", listed[0]["id"], "--json").output)
    assert shown["metrics"]["drift_share"] == 1.0
    assert shown["reference"] == "prices-data@1"
    text = cli("monitor", "metrics").output
    assert 'shipyard_monitor_drift_share{model="prices",version="1"} 1.0' in text


def test_monitor_run_json_and_an_empty_window(cli: Invoke, monitored: Path) -> None:
    result = cli("monitor", "run", "prices@1", "--window", "1s", "--json")
    assert result.exit_code == 0, result.output
    # the rows were logged more than a second ago, or are still only a second old:
    # either way the answer is a run, never a crash
    assert json.loads(result.output)["status"] in ("no_data", "ok")


def test_monitor_bad_input_is_exit_2_naming_it(cli: Invoke, monitored: Path) -> None:
    assert cli("monitor", "run", "prices@9").exit_code == 2
    bad = cli("monitor", "run", "prices@1", "--window", "soon")
    assert bad.exit_code == 2 and "soon" in bad.output
    assert cli("monitor", "show", "nope").exit_code == 2
    _alerts(monitored, "drift_share >> 1")
    rule = cli("monitor", "run", "prices@1")
    assert rule.exit_code == 2 and "drift_share >> 1" in rule.output
    assert json.loads(cli("monitor", "history", "prices", "--json").output) == []


def test_the_monitor_flow_runs_as_a_pipeline_target(cli: Invoke, monitored: Path) -> None:
    with shipyard.connect(monitored, user="alice") as project:
        run = project.pipelines.run(
            "shipyard.cli.monitoring_flow:monitor",
            {"model": "prices@1", "window": "1h", "project": str(monitored)},
        )
        assert run.status == "succeeded"
        assert run.result["model"] == "prices@1"
        assert [r.id for r in project.monitoring.history("prices")] == [run.result["id"]]


def test_monitor_run_names_a_rule_it_could_not_evaluate(cli: Invoke, monitored: Path) -> None:
    _alerts(monitored, "drift_score.z > 0.2")  # the model's only feature is x
    result = cli("monitor", "run", "prices@1", "--window", "1h")
    assert result.exit_code == 0, result.output
    assert "rule not evaluated" in result.output
    assert "no feature column 'z'" in result.output and "ALERT" not in result.output
    listed = json.loads(cli("monitor", "history", "prices", "--json").output)
    assert listed[0]["skipped"][0]["rule"] == "drift_score.z > 0.2"
