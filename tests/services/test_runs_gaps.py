"""Run behaviours the tracking tests did not force: figures, Ctrl-C, silent remote runs."""

from __future__ import annotations

import struct
from datetime import timedelta
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from shipyard.app import Shipyard
from shipyard.domain.ids import new_id, utcnow
from shipyard.errors import InvalidArgumentError
from shipyard.services.runs import STALE_AFTER
from shipyard.stores.metadata.schema import runs


def _figure() -> Figure:
    # Figure() needs no pyplot and no GUI backend: savefig renders with Agg.
    figure = Figure(figsize=(4, 3), dpi=50)
    axes = figure.subplots()
    axes.plot([0, 1, 2, 3], [1.0, 0.5, 0.3, 0.25], label="loss")
    axes.legend()
    return figure


def test_log_figure_stores_a_matplotlib_figure_that_reads_back_as_the_format_asked(
    project: Shipyard, tmp_path: Path
) -> None:
    figure = _figure()
    with project.runs.start_run("plots", capture=False) as run:
        png = run.log_figure(figure, "plots/loss.png")
        svg = run.log_figure(figure, "plots/loss.svg")
        with pytest.raises(InvalidArgumentError, match="matplotlib figure"):
            run.log_figure({"not": "a figure"}, "plots/dict.png")
    listed = {a.path: a for a in project.runs.artifacts(run.id)}
    assert sorted(listed) == ["plots/loss.png", "plots/loss.svg"]
    assert listed["plots/loss.png"].digest == png.digest
    data = project.runs.read_artifact(run.id, "plots/loss.png")
    assert len(data) == png.size == listed["plots/loss.png"].size
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # The IHDR chunk holds the image size: 4 x 3 inches at 50 dpi.
    assert struct.unpack(">II", data[16:24]) == (200, 150)
    text = project.runs.read_artifact(run.id, "plots/loss.svg").decode()
    assert svg.path == "plots/loss.svg" and "<svg" in text and "</svg>" in text
    written = project.runs.download_artifacts(run.id, tmp_path / "out", "plots")
    assert sorted(p.name for p in written) == ["loss.png", "loss.svg"]
    assert (tmp_path / "out" / "plots" / "loss.png").read_bytes() == data


def test_a_run_left_by_keyboard_interrupt_is_killed_and_keeps_what_it_logged(
    project: Shipyard,
) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        project.runs.start_run("interrupted", capture=False) as run,
    ):
        run.log_param("lr", 0.1)
        run.log_metric("loss", 0.5)
        raise KeyboardInterrupt
    stored = project.runs.get(run.id)
    assert stored.status == "killed"
    assert stored.end_time is not None
    assert stored.params == {"lr": "0.1"}
    assert stored.metrics["loss"].value == 0.5
    assert project.runs.active_run() is None, "the interrupted run left the stack"
    with pytest.raises(ValueError), project.runs.start_run("interrupted", capture=False) as other:
        raise ValueError("an ordinary error")
    assert project.runs.get(other.id).status == "failed"


def _remote_run(project: Shipyard, experiment_id: str, heartbeat_age: timedelta) -> str:
    """A running run as a client on another machine records it, silent for ``heartbeat_age``."""
    run_id = new_id()
    now = utcnow()
    with project.metadata.write() as conn:
        conn.execute(
            runs.insert().values(
                id=run_id,
                experiment_id=experiment_id,
                name=f"remote-{run_id[-6:]}",
                parent_id=None,
                status="running",
                user="eddie",
                start_time=now - heartbeat_age - timedelta(minutes=1),
                end_time=None,
                heartbeat_at=now - heartbeat_age,
                # Another machine: its process cannot be asked, only its heartbeat tells.
                host="gpu-box-7.training.invalid",
                pid=4242,
                environment=None,
                resources=None,
            )
        )
    return run_id


def test_a_remote_run_silent_longer_than_stale_after_is_marked_killed_on_read(
    project: Shipyard,
) -> None:
    experiment = project.runs.experiment("remote")
    silent = _remote_run(project, experiment.id, STALE_AFTER + timedelta(minutes=1))
    beating = _remote_run(project, experiment.id, STALE_AFTER - timedelta(minutes=1))
    before = utcnow()
    stored = project.runs.get(silent)
    assert stored.status == "killed"
    assert stored.end_time is not None and stored.end_time >= before - timedelta(seconds=1)
    assert project.runs.get(beating).status == "running"
    found = {r.id: r.status for r in project.runs.search("remote")}
    assert found == {silent: "killed", beating: "running"}
