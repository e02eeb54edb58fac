"""The end-to-end demo behind `make demo`: each step runs the real CLI and shows its output.

It works in a fresh temporary folder on the embedded defaults (SQLite + local artifacts), so
it never touches anything else on the machine.
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

from rich.console import Console
from rich.rule import Rule

console = Console(highlight=False)


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
        console.print(Rule(f"[bold]{title}"))
    who = f"SHIPYARD_USER={user} " if user else ""
    console.print(f"[cyan]$ {who}shipyard {shlex.join(args)}[/cyan]")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["COLUMNS"] = "110"
    if user:
        env["SHIPYARD_USER"] = user
    result = subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    if show or result.returncode != expect:
        console.print(output.rstrip(), markup=False, soft_wrap=True)
    if result.returncode != expect:
        console.print(f"[red]demo step failed with exit code {result.returncode}[/red]")
        raise SystemExit(1)
    return result.stdout


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
        request_id = json.loads(out)["id"]
        step(
            "   she cannot approve her own request (two-person rule): exit 4",
            "models",
            "approve",
            request_id,
            cwd=root,
            user="alice",
            expect=4,
        )
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
        step("17. where production came from", "lineage", "wine-classifier@production", cwd=root)
        step("18. the audit log is intact", "audit", "verify", cwd=root)
        step("19. check every blob and reference", "fsck", cwd=root)
        step("20. blobs nothing references", "gc", "--dry-run", cwd=root)
        serve_and_monitor(root)
        console.print(Rule("[green]demo finished"))


def train_in_a_pipeline(root: Path) -> str:
    """Run the training pipeline twice (the second run is all cached); show its DAG.

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
    out = step(
        "10. run it again: same data, same code, every task comes from the cache",
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
    step(
        "11. the second run's DAG (and a timeline as HTML)",
        "pipelines",
        "show",
        second["id"],
        "--html",
        "pipeline.html",
        cwd=root,
    )
    return str(first["result"]["model"])


def serve_and_monitor(root: Path) -> None:
    """Serve production, send normal then shifted traffic, monitor it: drift, alert, retrain."""
    import socket
    import time

    import httpx
    from sklearn.datasets import load_wine

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "wine-classifier@production", "--port", str(port)]
    console.print(Rule("[bold]21. serve the production model in the background"))
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
                console.print("[red]the model server did not start[/red]")
                raise SystemExit(1)
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                console.print("[red]the model server was not ready within 60 s[/red]")
                raise SystemExit(1)
            time.sleep(0.2)
        wine = load_wine(as_frame=True)
        normal = wine.data.sample(60, random_state=1)
        shifted = wine.data.sample(120, random_state=2) * 1.3  # a new supplier's units
        console.print(Rule("[bold]22. traffic: 60 usual rows, then 120 shifted ones, with labels"))
        labels: dict[str, int] = {}
        with httpx.Client(base_url=url, timeout=30) as client:
            for frame in (normal, shifted):
                for index, row in frame.iterrows():
                    answer = client.post("/predict", json={"records": [row.to_dict()]})
                    answer.raise_for_status()
                    labels[answer.json()["request_id"]] = int(wine.target[index])
            client.post("/feedback", json={"labels": labels}).raise_for_status()
            console.print(f"  {len(labels)} requests answered, {len(labels)} labels sent back")
            console.print(Rule("[bold]23. what Prometheus scrapes from /metrics (a few lines)"))
            console.print(f"[cyan]$ curl {url}/metrics[/cyan]")
            wanted = ("shipyard_requests_total{", "shipyard_model_info", "shipyard_request_dur")
            lines = client.get("/metrics").text.splitlines()
            shown = [x for x in lines if x.startswith(wanted) and "_bucket" not in x]
            console.print("\n".join(shown[:8]), markup=False)
    finally:
        server.terminate()  # SIGTERM: drain, flush the prediction log, mark it stopped
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    configure_monitoring(root)
    step(
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
    step(
        "25. the promotion request the loop filed waits for an approver",
        "models",
        "requests",
        cwd=root,
    )


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
