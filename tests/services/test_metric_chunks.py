"""Metric points across chunk boundaries: histories and summaries stay exact."""

from __future__ import annotations

import math

import numpy as np

from shipyard.app import Shipyard
from shipyard.domain.metrics import CHUNK_POINTS


def test_batches_that_fill_extend_and_open_chunks_keep_every_point_in_order(
    project: Shipyard,
) -> None:
    batches = [  # points per key a batch logs: a partial chunk, a fill past it, several more
        {"loss": 3, "acc": 1},
        {"loss": CHUNK_POINTS, "acc": 2},
        {"loss": 2 * CHUNK_POINTS + 5, "lr": 1},
        {"acc": 1, "lr": CHUNK_POINTS - 1},
    ]
    expected: dict[str, list[tuple[int, float]]] = {}
    with project.runs.start_run("chunks", capture=False) as run:
        for batch in batches:
            for key, n in batch.items():
                have = expected.setdefault(key, [])
                for _ in range(n):
                    step = len(have)
                    value = math.nan if step == 7 else float(step) * 0.5
                    have.append((step, value))
                    run.log_metric(key, value, step=step)
            run.flush()  # one append per batch: each extends the chunks the last one left
    for key, points in expected.items():
        history = project.runs.metrics.history(run.id, key)
        assert history.steps.tolist() == [s for s, _ in points], key
        assert np.array_equal(history.values, [v for _, v in points], equal_nan=True), key
    summary = project.runs.get(run.id).metrics
    for key, points in expected.items():
        finite = [v for _, v in points if not math.isnan(v)]
        assert summary[key].count == len(points), key
        assert summary[key].step == len(points) - 1, key
        assert summary[key].min == min(finite) and summary[key].max == max(finite), key


def test_a_batch_of_many_new_keys_keeps_nan_and_infinities_in_the_summaries(
    project: Shipyard,
) -> None:
    values = {"a": math.nan, "b": math.inf, "c": -math.inf, "d": 2.5}
    with project.runs.start_run("keys", capture=False) as run:
        run.log_metrics(values, step=3)
    summary = project.runs.get(run.id).metrics
    assert math.isnan(summary["a"].value) and summary["a"].min is None
    assert summary["a"].max is None
    assert summary["b"].value == math.inf and summary["b"].min == math.inf
    assert summary["c"].max == -math.inf
    assert (summary["d"].value, summary["d"].step, summary["d"].count) == (2.5, 3, 1)
