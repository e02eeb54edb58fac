"""``shipyard monitor``: drift, quality and operations of a served model, alerts, retraining."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, kv_table, table
from shipyard.domain.monitoring import MonitorRun

__all__ = ["app"]

app = typer.Typer(
    help="Monitoring: drift, data and model quality, latency; alerts and the retraining loop.",
    no_args_is_help=True,
)

_SHOWN = (
    "rows",
    "drift_share",
    "drifted_columns",
    "missing_rate",
    "accuracy",
    "f1",
    "roc_auc",
    "rmse",
    "latency_p50_ms",
    "latency_p99_ms",
    "throughput_rps",
)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _render(run: MonitorRun) -> None:
    rows: dict[str, object] = {
        "id": run.id,
        "model": run.model_ref,
        "status": run.status,
        "reference": run.reference,
        "current": run.current,
    }
    if run.window_start and run.window_end:
        rows["window (UTC)"] = f"{run.window_start:%Y-%m-%d %H:%M} → {run.window_end:%H:%M}"
    for key in _SHOWN:
        if key in run.metrics:
            rows[key] = _number(run.metrics[key])
    console.print(kv_table({k: escape(str(v)) for k, v in rows.items()}, title="monitor run"))
    scores = sorted(
        ((k[12:], v) for k, v in run.metrics.items() if k.startswith("drift_score.")),
        key=lambda kv: -kv[1],
    )
    if scores:
        drifted = {k[8:] for k, v in run.metrics.items() if k.startswith("drifted.") and v}
        cells = [(escape(n), _number(v), "drifted" if n in drifted else "") for n, v in scores[:10]]
        console.print(table(("feature", "drift score", ""), cells))
    for alert in run.alerts:
        console.print(f"[bold red]ALERT[/] {escape(alert.message)}")
    for rule in run.skipped:
        console.print(f"[yellow]rule not evaluated[/] {escape(rule.message)}")
    if run.status == "no_data":
        console.print("no rows in the window: nothing was tested (status no_data)")
    if run.error:
        console.print(f"[red]the run failed:[/] {escape(run.error)}")
    retrain = dict(run.retrain)
    if retrain:
        for key in ("dataset", "pipeline_run", "pipeline_status", "model_version"):
            if key in retrain:
                console.print(f"retrain {key.replace('_', ' ')}: {escape(str(retrain[key]))}")
        if "promotion_request" in retrain:
            console.print(
                f"promotion request {retrain['promotion_request']} -> "
                f"{escape(str(retrain['promote_to']))} is pending an approver"
            )
        if "error" in retrain:
            console.print(f"[red]retraining stopped:[/] {escape(str(retrain['error']))}")


@app.command()
def run(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="The model version, e.g. churn@production."),
    window: str = typer.Option("24h", "--window", "-w", help="Prediction-log window: 1h, 7d…"),
    reference: str | None = typer.Option(
        None, "--reference", help="Reference dataset version (default: the training data)."
    ),
    current: str | None = typer.Option(
        None, "--current", help="Monitor this dataset version instead of the prediction log."
    ),
    html: Path | None = typer.Option(None, "--html", help="Write the HTML report here."),
    no_retrain: bool = typer.Option(
        False, "--no-retrain", help="Alert, but do not start the retraining loop."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Monitor a model version over a window; alert and retrain as [monitoring] says."""
    with errors_to_exit():
        # In remote mode the server computes the run where the prediction log is; the HTML
        # report comes back by digest and is written here.
        monitoring = open_service(ctx, "monitoring")
        result = monitoring.run(
            model, window=window, reference=reference, current=current, retrain=not no_retrain
        )
        if html is not None:
            html.write_text(monitoring.report_html(result.id), encoding="utf-8")
    if as_json:
        emit_json(result.to_dict())
        return
    _render(result)
    if html is not None:
        console.print(f"HTML report: {escape(str(html))}")


@app.command()
def show(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The monitor run's id."),
    as_json: bool = JsonOption,
) -> None:
    """Show one monitor run: status, metrics, drift per feature, alerts."""
    with errors_to_exit():
        found = open_service(ctx, "monitoring").show(run_id)
    if as_json:
        emit_json(found.to_dict())
    else:
        _render(found)


@app.command()
def history(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="The model's name."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Show the newest N runs."),
    as_json: bool = JsonOption,
) -> None:
    """List a model's monitor runs, newest first."""
    with errors_to_exit():
        found = open_service(ctx, "monitoring").history(model, limit=limit)
    if as_json:
        emit_json([r.to_dict() for r in found])
        return
    rows = [
        (
            r.id,
            escape(r.model_ref),
            r.status,
            str(r.rows),
            _number(r.metrics["drift_share"]) if "drift_share" in r.metrics else "",
            str(len(r.alerts)),
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
        )
        for r in found
    ]
    console.print(
        table(("id", "model", "status", "rows", "drift share", "alerts", "at (UTC)"), rows)
    )


@app.command()
def metrics(
    ctx: typer.Context,
    model: list[str] | None = typer.Option(None, "--model", "-m", help="Only these models."),
    as_json: bool = JsonOption,
) -> None:
    """Print the latest monitor run of each model as Prometheus text."""
    with errors_to_exit():
        text = open_service(ctx, "monitoring").metrics_text(model or None)
    if as_json:
        emit_json({"text": text})
    else:
        sys.stdout.write(text)
