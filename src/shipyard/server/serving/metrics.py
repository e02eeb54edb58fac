"""Prometheus metrics of the model server, kept in plain counters and written as text.

The serving path only increments integers (no locks: one event loop per process), and the
text exposition format is written by hand when ``/metrics`` is scraped.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS", "MONITORING_EVERY", "Histogram", "ServingMetrics"]

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MONITORING_EVERY = 30.0  # seconds between reads of the latest monitor run


class Histogram:
    """A Prometheus histogram: cumulative counts per upper bound, a sum and a count."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        """The ``_bucket``, ``_sum`` and ``_count`` lines."""
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{_number(bound)}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {_number(self.sum)}")
        out.append(f"{name}_count{suffix} {self.count}")
        return out


class ServingMetrics:
    """Counters of one server process."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.errors: dict[str, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.rows = 0
        # Monitoring gauges: ``monitoring_source`` reads the latest monitor run from the
        # store (slow, off the request path, every ``MONITORING_EVERY`` s); /metrics only
        # appends the text it cached.
        self.monitoring_source: Callable[[], str] | None = None
        self.monitoring_text = ""

    def refresh_monitoring(self) -> None:
        """Read the latest monitoring results again (run it in a thread, not per request)."""
        if self.monitoring_source is not None:
            self.monitoring_text = self.monitoring_source()

    def request(self, endpoint: str, status: int) -> None:
        """Count a finished request."""
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def error(self, kind: str) -> None:
        """Count an error by kind (``invalid_input``, ``malformed_body``, ``internal``…)."""
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def render(
        self,
        *,
        model: str,
        version: int,
        runtime: str,
        log: Mapping[str, int],
        switches: int,
        uptime: float,
    ) -> str:
        """The text exposition format (version 0.0.4)."""
        out = [
            "# HELP shipyard_requests_total HTTP requests answered, by endpoint and status.",
            "# TYPE shipyard_requests_total counter",
        ]
        for (endpoint, status), count in sorted(self.requests.items()):
            out.append(
                f'shipyard_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}'
            )
        out += [
            "# HELP shipyard_errors_total Requests that failed, by kind.",
            "# TYPE shipyard_errors_total counter",
        ]
        for kind, count in sorted(self.errors.items()):
            out.append(f'shipyard_errors_total{{kind="{kind}"}} {count}')
        out += [
            "# HELP shipyard_request_duration_seconds Time to answer /predict.",
            "# TYPE shipyard_request_duration_seconds histogram",
            *self.latency.lines("shipyard_request_duration_seconds"),
            "# HELP shipyard_batch_size Rows per model call of micro-batched requests.",
            "# TYPE shipyard_batch_size histogram",
            *self.batch_size.lines("shipyard_batch_size"),
            "# HELP shipyard_predicted_rows_total Rows predicted.",
            "# TYPE shipyard_predicted_rows_total counter",
            f"shipyard_predicted_rows_total {self.rows}",
            "# HELP shipyard_model_info The model version being served (always 1).",
            "# TYPE shipyard_model_info gauge",
            f'shipyard_model_info{{model="{_label(model)}",version="{version}",'
            f'runtime="{runtime}"}} 1',
            "# HELP shipyard_model_switches_total Times a followed alias moved and was loaded.",
            "# TYPE shipyard_model_switches_total counter",
            f"shipyard_model_switches_total {switches}",
            "# HELP shipyard_prediction_log_queued_rows Rows waiting to be written to the log.",
            "# TYPE shipyard_prediction_log_queued_rows gauge",
            f"shipyard_prediction_log_queued_rows {log.get('queued', 0)}",
            "# HELP shipyard_prediction_log_rows_total Rows handed to the log, by outcome.",
            "# TYPE shipyard_prediction_log_rows_total counter",
        ]
        for outcome in ("written", "dropped", "sampled_out"):
            out.append(
                f'shipyard_prediction_log_rows_total{{outcome="{outcome}"}} {log.get(outcome, 0)}'
            )
        out += [
            "# HELP shipyard_uptime_seconds Seconds since the server started.",
            "# TYPE shipyard_uptime_seconds gauge",
            f"shipyard_uptime_seconds {_number(uptime)}",
        ]
        text = "\n".join(out) + "\n"
        return text + self.monitoring_text


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
