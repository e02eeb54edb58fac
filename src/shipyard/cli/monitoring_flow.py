"""A pipeline that runs one monitor pass, for the scheduler (it opens a project: outer layer).

    shipyard schedules add nightly-monitor shipyard.cli.monitoring_flow:monitor
        --every 1h --param model=churn@champion --param window=1h

The task opens the project of the working directory (the scheduler's), or ``project``.
"""

from __future__ import annotations

from typing import Any

from shipyard.services.pipeline_tasks import pipeline, task

__all__ = ["monitor", "monitor_once"]


@task
def monitor_once(model: str, window: str, project: str) -> dict[str, Any]:
    """Run ``MonitoringService.run`` and return the run as a dict (the pipeline's result)."""
    from shipyard.app import build
    from shipyard.settings import Settings

    with build(Settings.load(project or None)) as opened:
        return opened.monitoring.run(model, window=window).to_dict()


@pipeline(name="monitor")
def monitor(model: str, window: str = "24h", project: str = "") -> Any:
    """Monitor ``model`` over the last ``window`` (alerts and retraining as configured).

    Args:
        model: the model version, e.g. ``churn@champion``.
        window: how far back the prediction log is read.
        project: the project folder (default: the working directory).
    """
    return monitor_once(model, window, project)
