"""A shipyard project whose prediction log holds a window file set: for ``monitor run``.

``build(path, reference_file, window_folder)`` (untimed set-up, in the parent) makes a project
with the reference table as dataset ``ref@1``, an identity model ``m@1`` whose inputs are the
window's columns, and the window's rows as prediction-log batch files of model ``m`` (one
batch file per window part, each row its own request, stored the way the model server's log
writer stores them). The child then times ``sy.monitoring.run("m@1", reference="ref@1")``
over the whole log: the real path, from the batch index to the report.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from shipyard import PythonModel

MODEL, REFERENCE, DEPLOYMENT = "m", "ref", "bench-deployment"


class FirstInput(PythonModel):  # type: ignore[misc]
    """Stands in for a model: predicts its first input (never loaded by a monitor run)."""

    def predict(self, context: Any, model_input: Any) -> Any:
        return model_input.iloc[:, 0]


def build(path: Path, reference: Path, window: Path) -> None:
    """Create the project at ``path`` unless a finished one is there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import shipyard
    from shipyard.services.prediction_log import StoredBatches

    if (path / ".ready").exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    shipyard_bin = Path(sys.executable).parent / "shipyard"
    subprocess.run([str(shipyard_bin), "init", str(path)], check=True, capture_output=True)
    with shipyard.connect(path) as sy:
        sy.datasets.add(REFERENCE, reference)
        example = pq.read_table(reference).slice(0, 5).to_pandas()
        sy.models.log_model(FirstInput(), MODEL, input_example=example, requirements=[], onnx=False)
        sink = StoredBatches(sy.metadata, sy.content)
        start = datetime.now(UTC) - timedelta(days=1)
        done = 0
        for part in sorted(window.glob("*.parquet")):
            table = pq.read_table(part)
            n = table.num_rows
            at = pa.array(
                np.datetime64(start.replace(tzinfo=None), "us")
                + (np.arange(done, done + n) // 1000).astype("timedelta64[ms]"),
                pa.timestamp("us", tz="UTC"),
            )
            logged = pa.table(
                {
                    "request_id": pa.array([f"r{i}" for i in range(done, done + n)]),
                    "row": pa.array(np.zeros(n, np.int32)),
                    "at": at,
                    "deployment_id": pa.array([DEPLOYMENT] * n),
                    "version": pa.array(np.ones(n, np.int32)),
                    "latency_ms": pa.array(np.full(n, 0.25)),
                    **{name: table[name] for name in table.column_names},
                    "prediction": table[table.column_names[0]],
                }
            )
            buffer = io.BytesIO()
            pq.write_table(logged, buffer, compression="zstd")
            sink.store_batch(
                deployment_id=DEPLOYMENT,
                name=MODEL,
                data=buffer.getvalue(),
                rows=n,
                first_at=at[0].as_py(),
                last_at=at[-1].as_py(),
            )
            done += n
    (path / ".ready").write_text(str(done))


def monitor(path: Path) -> dict[str, Any]:
    """One monitor run over the whole log; the child times it."""
    import shipyard

    with shipyard.connect(path) as sy:
        run = sy.monitoring.run(
            f"{MODEL}@1", window="30d", reference=f"{REFERENCE}@1", retrain=False
        )
        report = sy.monitoring.report(run.id)["report"]
    drifted = [c["name"] for c in report["columns"] if c.get("drifted")]
    return {"rows": run.rows, "drifted": drifted, "status": run.status}
