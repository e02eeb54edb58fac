"""The end-to-end demo behind `make demo`: each step runs the real CLI and shows its output.

It works in a fresh temporary folder on the embedded defaults (SQLite + local artifacts), so
it never touches anything else on the machine.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

console = Console(highlight=False)


def step(title: str, *args: str, cwd: Path, expect: int = 0, user: str | None = None) -> str:
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
        best = train_two_models(root)
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
        console.print(Rule("[green]demo finished"))


def train_two_models(root: Path) -> str:
    """Train two classifiers on wine@2 with the Python API, log and register both.

    Returns:
        The reference of the better version.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    import shipyard

    console.print(Rule("[bold]11. train two models on wine@2, tracked and registered"))
    with shipyard.connect(root, user="alice") as project:
        data = project.datasets.get("wine@2")
        frame = data.to_pandas()
        features = frame.drop(columns=["id", "target", "batch"])
        X_train, X_test, y_train, y_test = train_test_split(
            features, frame["target"], test_size=0.3, random_state=0, stratify=frame["target"]
        )
        candidates = {
            "logistic": LogisticRegression(max_iter=5000),
            "forest": RandomForestClassifier(n_estimators=100, max_depth=6, random_state=0),
        }
        scores: dict[str, float] = {}
        for name, model in candidates.items():
            with project.runs.start_run("wine", name=name) as run:
                run.use_dataset(data)
                run.log_params({k: v for k, v in model.get_params().items() if v is not None})
                model.fit(X_train, y_train)
                accuracy = float((model.predict(X_test) == y_test).mean())
                run.log_metric("accuracy", accuracy)
                version = run.log_model(
                    model, "wine-classifier", input_example=X_test[:5], training_sample=X_train
                )
            scores[version.ref] = accuracy
            console.print(
                f"  {name}: accuracy {accuracy:.3f} -> {version.ref} "
                f"(ONNX {version.onnx_status}"
                + (
                    f", max diff {version.onnx_max_diff:.2g})"
                    if version.onnx_max_diff is not None
                    else ")"
                )
            )
    best = max(scores, key=lambda ref: scores[ref])
    console.print(f"  the better model is {best}")
    return best


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
