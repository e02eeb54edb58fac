"""The end-to-end demo behind `make demo`: each step runs the real CLI and shows its output.

It works in a fresh temporary folder (under $TMPDIR) on the embedded defaults (SQLite + local
artifacts), so it never touches anything else on the machine.

The demo checks its own story: where an outcome it promises does not happen (the second
pipeline run not cached, no drift, no alert, no retrained version, no pending request), it
stops with a red line naming the step and exits 1.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.rule import Rule

console = Console(highlight=False)
_section = ["start"]  # the title of the step running now, for failure messages


def section(title: str) -> None:
    """Start a step: print its title as a rule and remember it for failure messages."""
    _section[0] = title.strip()
    console.print(Rule(f"[bold]{title}"))


def fail(message: str) -> NoReturn:
    """Stop the demo with exit code 1 and a red line naming the step that went wrong."""
    console.print(f"[bold red]demo failed at step {_section[0]!r}:[/] {message}", soft_wrap=True)
    raise SystemExit(1)


def done(outcome: str) -> None:
    """Print an outcome the story promised, checked."""
    console.print(f"  [green]✓[/green] {outcome}", soft_wrap=True)


def check(ok: bool, outcome: str, missing: str) -> None:
    """Print ``outcome`` when ``ok``; else stop the demo saying what is ``missing``."""
    if not ok:
        fail(missing)
    done(outcome)


def shipyard(*args: str, cwd: Path, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in the project, as USER, with no SHIPYARD_* setting from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["COLUMNS"] = "110"
    if user:
        env["SHIPYARD_USER"] = user
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def step(
    title: str,
    *args: str,
    cwd: Path,
    expect: int = 0,
    user: str | None = None,
    show: bool = True,
) -> str:
    """Run `shipyard ARGS` in the project (as USER), show the command and its output."""
    if title:
        section(title)
    who = f"SHIPYARD_USER={user} " if user else ""
    console.print(f"[cyan]$ {who}shipyard {shlex.join(args)}[/cyan]")
    result = shipyard(*args, cwd=cwd, user=user)
    output = result.stdout + result.stderr
    if show or result.returncode != expect:
        console.print(output.rstrip(), markup=False, soft_wrap=True)
    if result.returncode != expect:
        fail(f"`shipyard {shlex.join(args)}` exited {result.returncode}, expected {expect}")
    return result.stdout


def query(*args: str, cwd: Path) -> Any:
    """The JSON answer of `shipyard ARGS --json`, run quietly to check an outcome."""
    result = shipyard(*args, "--json", cwd=cwd)
    if result.returncode != 0:
        console.print((result.stdout + result.stderr).rstrip(), markup=False, soft_wrap=True)
        fail(f"`shipyard {shlex.join(args)} --json` exited {result.returncode}")
    return json.loads(result.stdout)


def main() -> None:
    """Run every step of the demo."""
    with tempfile.TemporaryDirectory(prefix="shipyard-demo-") as tmp:
        root = Path(tmp)
        console.print(f"[bold]shipyard demo[/bold] in {root}")
        step("1. initialise a project", "init", cwd=root)
        notes = root / "notes.txt"
        notes.write_text("shipyard stores every file once, by its BLAKE3 digest.\n" * 100)
        step("2. store a file", "blobs", "put", "notes.txt", cwd=root)
        step("   storing it again stores nothing new", "blobs", "put", "notes.txt", cwd=root)
        step("3. what is configured, and can it be reached?", "info", cwd=root)

        wine = write_wine(root / "wine.csv")
        step(
            "4. add a dataset: the wine table scikit-learn ships",
            "data",
            "add",
            "wine",
            "wine.csv",
            "--key",
            "id",
            "--license",
            "BSD-3-Clause",
            "--tag",
            "source=sklearn",
            "--description",
            "Wine recognition data, one row a wine.",
            cwd=root,
        )
        step(
            "   adding the same content again makes no new version",
            "data",
            "add",
            "wine",
            "wine.csv",
            cwd=root,
        )
        change_wine(wine)
        step(
            "5. a changed version: rows dropped, a column shifted, a column added",
            "data",
            "add",
            "wine",
            "wine.csv",
            cwd=root,
        )
        step(
            "6. its card and column profile (and an HTML report with plots)",
            "data",
            "show",
            "wine@2",
            "--html",
            "wine-report.html",
            cwd=root,
        )
        checks = root / "checks.toml"
        checks.write_text(CHECKS)
        step(
            "7. validate it against declarative checks (exit 1 = a check failed)",
            "data",
            "validate",
            "wine@2",
            "--checks",
            "checks.toml",
            cwd=root,
            expect=1,
        )
        step("8. what changed between the versions", "data", "diff", "wine@1", "wine@2", cwd=root)
        best = train_in_a_pipeline(root)
        step(
            "12. the runs, best first",
            "runs",
            "list",
            "--experiment",
            "wine",
            "--order-by",
            "metrics.accuracy desc",
            cwd=root,
        )
        check_two_models(root, best)
        step("13. the registered versions", "models", "versions", "wine-classifier", cwd=root)
        step(
            "14. users: alice is admin, bob approves",
            "users",
            "create",
            "alice",
            "--role",
            "admin",
            cwd=root,
            user="alice",
        )
        step("", "users", "create", "bob", "--role", "approver", cwd=root, user="alice")
        out = step(
            "15. alice asks for the better model to go to production",
            "models",
            "request",
            best,
            "--to",
            "production",
            "--reason",
            "best validation accuracy",
            "--json",
            cwd=root,
            user="alice",
        )
        request = json.loads(out)
        request_id = request["id"]
        check(
            request["status"] == "pending",
            f"request {request_id} for {best} -> production is pending",
            f"the promotion request is {request['status']!r}, not pending",
        )
        step(
            "   she cannot approve her own request (two-person rule): exit 4",
            "models",
            "approve",
            request_id,
            cwd=root,
            user="alice",
            expect=4,
        )
        done("alice's self-approval was refused (exit 4)")
        step(
            "16. bob approves it",
            "models",
            "approve",
            request_id,
            "--comment",
            "looks good",
            cwd=root,
            user="bob",
        )
        production = query("models", "show", "wine-classifier@production", cwd=root)["ref"]
        check(
            production == best,
            f"bob approved: wine-classifier@production is {production}",
            f"after bob's approval production is {production}, not {best}",
        )
        out = step(
            "17. where production came from", "lineage", "wine-classifier@production", cwd=root
        )
        check(
            "wine@2" in out,
            "lineage leads from production back to the dataset wine@2",
            "the lineage of wine-classifier@production does not name the dataset wine@2",
        )
        step("18. the audit log is intact", "audit", "verify", cwd=root)
        step("19. check every blob and reference", "fsck", cwd=root)
        step("20. blobs nothing references", "gc", "--dry-run", cwd=root)
        serve_and_monitor(root, production)
        console.print(Rule("[green]demo finished: every outcome checked"))


def check_two_models(root: Path, best: str) -> None:
    """Both candidates were tracked as runs, and the more accurate one was registered."""
    runs = query("runs", "list", "--experiment", "wine", cwd=root)["runs"]
    accuracy = {r["id"]: r["metrics"]["accuracy"]["value"] for r in runs}
    names = sorted(r["name"] for r in runs)
    check(
        names == ["LogisticRegression", "RandomForestClassifier"],
        "two models trained: " + " and ".join(names),
        f"expected one run per candidate model, found {names}",
    )
    version = query("models", "show", best, cwd=root)
    check(
        accuracy.get(version["run_id"]) == max(accuracy.values()),
        f"the better one (accuracy {max(accuracy.values()):.3f}) is registered as {best}",
        f"{best} comes from run {version['run_id']}, not from the most accurate run",
    )


def train_in_a_pipeline(root: Path) -> str:
    """Run the training pipeline twice (the second run comes from the cache); show its DAG.

    Returns:
        The reference of the model version the pipeline registered.
    """
    shutil.copy(Path(__file__).with_name("wine_pipeline.py"), root / "wine_pipeline.py")
    target = "wine_pipeline.py:train"
    out = step(
        "9. train as a pipeline: load, validate, split, two models at once, evaluate, register",
        "run",
        target,
        "--param",
        "dataset=wine@2",
        "--json",
        cwd=root,
        user="alice",
        show=False,
    )
    first = json.loads(out)
    console.print(
        f"  run {first['id']}: {first['status']} in {first['duration']:.1f} s -> {first['result']}"
    )
    model = first["result"].get("model") if isinstance(first["result"], dict) else None
    check(
        isinstance(model, str) and model.startswith("wine-classifier@"),
        f"the pipeline registered {model}",
        f"the pipeline's result names no registered model: {first['result']!r}",
    )
    out = step(
        "10. run it again: same data, same code; every task but the data gate is cached",
        "run",
        target,
        "--param",
        "dataset=wine@2",
        "--json",
        cwd=root,
        user="alice",
        show=False,
    )
    second = json.loads(out)
    console.print(f"  run {second['id']}: {second['status']} in {second['duration']:.1f} s")
    tasks = query("pipelines", "show", second["id"], cwd=root)["tasks"]
    # validate is not cached on purpose: the gate checks every run (see wine_pipeline.py).
    rerun = sorted({t["task"] for t in tasks if t["status"] != "cached"})
    check(
        rerun == ["validate"],
        f"{len(tasks) - 1} of {len(tasks)} tasks came from the cache; only validate ran again",
        "the second run should take every task but validate from the cache; not from the "
        f"cache: {', '.join(rerun) or 'none'}",
    )
    check(
        second["result"] == first["result"],
        f"nothing new was registered: the result is still {model}",
        f"the second run's result {second['result']!r} differs from the first's",
    )
    step(
        "11. the second run's DAG (and a timeline as HTML)",
        "pipelines",
        "show",
        second["id"],
        cwd=root,
    )
    step("", "pipelines", "show", second["id"], "--html", "pipeline.html", cwd=root)
    return str(model)


def serve_and_monitor(root: Path, production: str) -> None:
    """Serve production, send normal then shifted traffic, monitor it: drift, alert, retrain."""
    import signal
    import socket
    import time

    import httpx
    from sklearn.datasets import load_wine

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "wine-classifier@production", "--port", str(port)]
    section("21. serve the production model in the background")
    console.print(f"[cyan]$ shipyard {shlex.join(args)} &[/cyan]")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "shipyard", *args],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                console.print((server.stderr.read() if server.stderr else "").rstrip())
                fail(f"the model server exited with code {server.returncode} before it was ready")
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                fail("the model server was not ready within 60 s")
            time.sleep(0.2)
        done(f"{production} answers on {url}")
        wine = load_wine(as_frame=True)
        normal = wine.data.sample(60, random_state=1)
        shifted = wine.data.sample(120, random_state=2) * 1.3  # a new supplier's units
        section("22. traffic: 60 usual rows, then 120 shifted ones, with labels")
        labels: dict[str, int] = {}
        with httpx.Client(base_url=url, timeout=30) as client:
            for frame in (normal, shifted):
                for index, row in frame.iterrows():
                    answer = client.post("/predict", json={"records": [row.to_dict()]})
                    answer.raise_for_status()
                    labels[answer.json()["request_id"]] = int(wine.target[index])
            feedback = client.post("/feedback", json={"labels": labels})
            feedback.raise_for_status()
            stored = feedback.json()["stored"]
            check(
                len(labels) == 180 and stored == len(labels),
                f"{len(labels)} requests answered, {stored} labels sent back and stored",
                f"{len(labels)} distinct requests answered and {stored} labels stored, not 180",
            )
            section("23. what Prometheus scrapes from /metrics (a few lines)")
            console.print(f"[cyan]$ curl {url}/metrics[/cyan]")
            wanted = ("shipyard_requests_total{", "shipyard_model_info", "shipyard_request_dur")
            lines = client.get("/metrics").text.splitlines()
            shown = [x for x in lines if x.startswith(wanted) and "_bucket" not in x]
            console.print("\n".join(shown[:8]), markup=False)
            answered = 'shipyard_requests_total{endpoint="/predict",status="200"} 180'
            check(
                answered in lines,
                "/metrics counts the 180 answered predictions",
                f"/metrics has no line {answered!r}",
            )
    finally:
        server.terminate()  # SIGTERM: drain, flush the prediction log, mark it stopped
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    # uvicorn re-raises the SIGTERM it drained on: that exit is a clean stop too.
    check(
        server.returncode in (0, -signal.SIGTERM),
        "the server stopped on SIGTERM: requests drained, prediction log flushed",
        f"the model server did not stop cleanly on SIGTERM (exit code {server.returncode})",
    )
    configure_monitoring(root)
    out = step(
        "24. monitor the last hour: drift, the alert, and the retraining loop",
        "monitor",
        "run",
        "wine-classifier@production",
        "--window",
        "1h",
        "--html",
        "monitoring.html",
        cwd=root,
        user="alice",
    )
    retrained = check_monitoring(root, production, out)
    step(
        "25. the promotion request the loop filed waits for an approver",
        "models",
        "requests",
        cwd=root,
    )
    pending = query("models", "requests", "--model", "wine-classifier", cwd=root)
    check(
        any(r["model_version"] == retrained and r["target"] == "production" for r in pending),
        f"a request for {retrained} -> production is pending an approver",
        f"no pending promotion request for {retrained}: {[r['model_version'] for r in pending]}",
    )


def check_monitoring(root: Path, production: str, output: str) -> str:
    """Drift was found on the shifted traffic, the alert fired, and retraining made N+1.

    Returns:
        The retrained model version's reference.
    """
    run = query("monitor", "history", "wine-classifier", "--limit", "1", cwd=root)[0]
    metrics = run["metrics"]
    drifted = int(metrics.get("drifted_columns", 0))
    tested = sum(1 for key in metrics if key.startswith("drift_score."))
    check(
        metrics.get("dataset_drift") == 1,
        f"drift found: {drifted} of {tested} features drifted in {run['rows']} logged rows",
        f"no dataset drift on the shifted traffic: {drifted} of {tested} features drifted "
        f"in {run['rows']} logged rows",
    )
    fired = [a["rule"] for a in run["alerts"]]
    check(
        run["status"] == "alert" and any(r.startswith("drift_share") for r in fired),
        "the alert fired: " + ", ".join(fired),
        f"the drift_share alert did not fire (status {run['status']}, alerts {fired})",
    )
    name, _, number = production.rpartition("@")
    retrained = f"{name}@{int(number) + 1}"
    versions = [v["ref"] for v in query("models", "versions", name, cwd=root)]
    if retrained not in versions:
        why = [x for x in output.splitlines() if x.startswith("retraining stopped")]
        runs = [x.split()[-1] for x in output.splitlines() if x.startswith("retrain pipeline run:")]
        if runs:  # say which task failed and how, from the pipeline run's record
            tasks = query("pipelines", "show", runs[0], cwd=root)["tasks"]
            for task in tasks:
                if task["status"] == "failed" and task["error"]:  # the traceback's last line
                    why.append(f"task {task['key']}: {task['error'].strip().splitlines()[-1]}")
        fail(f"retraining made no {retrained} (versions: {', '.join(versions)}); {'; '.join(why)}")
    done(f"the retraining pipeline registered {retrained}")
    return retrained


def configure_monitoring(root: Path) -> None:
    """Turn on alert rules and the retraining loop in shipyard.toml (as a team would)."""
    config = root / "shipyard.toml"
    text = config.read_text()
    for key, value in {
        "alerts": '["drift_share > 0.3", "accuracy < 0.9"]',
        "retrain_pipeline": '"wine_pipeline.py:train"',
        "retrain_dataset": '"wine-feedback"',
    }.items():
        text = text.replace(f'# {key} = ""', f"{key} = {value}")
    config.write_text(text)
    console.print(Rule("[bold]    shipyard.toml: alert rules and the retraining pipeline"))
    section = text[text.index("[monitoring]") :].split("\n[")[0]
    console.print("\n".join(x for x in section.splitlines() if not x.startswith("#")), markup=False)


CHECKS = """
[[checks]]
kind = "not_null"
column = "alcohol"

[[checks]]
kind = "unique"
column = "id"

[[checks]]
kind = "range"
column = "alcohol"
min = 10
max = 15

[[checks]]
kind = "allowed_values"
column = "target"
values = [0, 1, 2]

[[checks]]
kind = "row_count"
min = 100
"""


def write_wine(path: Path) -> Path:
    """Write scikit-learn's wine table (shipped with scikit-learn, no download) as CSV."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.reset_index(names="id")
    frame.to_csv(path, index=False)
    return path


def change_wine(path: Path) -> None:
    """Drop some rows, shift one column and add another: what a new data drop looks like."""
    import pandas as pd

    frame = pd.read_csv(path)
    frame = frame.drop(index=range(170, 178))
    frame.loc[:30, "alcohol"] += 1.5
    frame["batch"] = "2026-11"
    frame.to_csv(path, index=False)


if __name__ == "__main__":
    main()
