"""Every HTML report, opened in headless Chromium: it renders, draws, and reaches nothing."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import shipyard as sy
from shipyard.app import Shipyard
from shipyard.domain.lineage import Node
from shipyard.services.drift import compare
from shipyard.services.drift_reports import render_drift_html
from shipyard.services.lineage_reports import render_lineage_html
from shipyard.services.reports import render_diff_html
from shipyard.services.run_reports import (
    compare_runs,
    load_compare_histories,
    load_histories,
    render_compare_html,
    render_history_html,
)

CHROMIUM = Path("/usr/bin/chromium")
REPORTS = ["profile", "diff", "history", "compare", "lineage", "drift", "pipeline"]


@sy.task
def _square(x: int) -> int:
    return x * x


@sy.task
def _total(xs: list[int]) -> int:
    return sum(xs)


@sy.pipeline(name="squares")
def _squares(n: int = 4) -> int:
    return _total(_square.map(range(n)))


pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright; the suite fails (not skips) without it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium", False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture
def pages(project: Shipyard, tmp_path: Path) -> dict[str, Path]:
    """One of each report, written from a small but real project."""
    table = pa.table({"id": list(range(300)), "x": [math.sin(i / 9) for i in range(300)]})
    first = project.datasets.add("waves", table, key="id").version
    shifted = table.set_column(1, "x", pa.array([v + 0.5 for v in table.column("x").to_pylist()]))
    second = project.datasets.add("waves", shifted).version
    ids = []
    for lr in (0.1, 0.01):
        with project.runs.start_run("fit", capture=False) as run:
            run.use_dataset(second.ref)
            run.log_param("lr", lr)
            for step in range(200):
                run.log_metric("loss", math.exp(-lr * step) + (math.nan if step == 50 else 0))
        ids.append(run.id)
    written = {
        "profile": project.datasets.write_report(second, tmp_path / "profile.html"),
        "diff": tmp_path / "diff.html",
        "history": tmp_path / "history.html",
        "compare": tmp_path / "compare.html",
        "lineage": tmp_path / "lineage.html",
        "drift": tmp_path / "drift.html",
        "pipeline": tmp_path / "pipeline.html",
    }
    written["diff"].write_text(render_diff_html(project.datasets.diff(first.ref, second.ref)))
    run, histories = load_histories(project.runs, ids[0])
    written["history"].write_text(render_history_html(run, histories))
    comparison = compare_runs(project.runs, ids)
    written["compare"].write_text(
        render_compare_html(comparison.runs, load_compare_histories(project.runs, comparison))
    )
    graph = project.lineage.graph(Node("dataset_version", second.ref))
    written["lineage"].write_text(render_lineage_html(graph))
    written["drift"].write_text(render_drift_html(compare(table, shifted)))
    pipeline_run = _squares.run({"n": 5}, project=project)
    assert pipeline_run.result == 30
    written["pipeline"].write_text(project.pipelines.report_html(pipeline_run.id))
    return written


@pytest.mark.parametrize("report", REPORTS)
def test_each_report_renders_its_charts_and_requests_nothing_remote(
    browser: object, pages: dict[str, Path], report: str, tmp_path: Path
) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(pages[report].as_uri())
    page.wait_for_load_state("load")
    assert errors == []
    assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests
    charts = page.locator("svg")
    assert charts.count() >= 1
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 50 and box["height"] > 20
    assert page.locator("h1").first.inner_text().strip()
    shot = page.screenshot(path=str(tmp_path / f"{report}.png"), full_page=True)
    assert len(set(shot[1000:20000])) > 20, "the screenshot is not blank"
    page.close()
