"""Request and error counts of deployments: heartbeat samples and windows over them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from sklearn.linear_model import Ridge
from sqlalchemy import func, select

import shipyard.services.deployments as deployments_module
from shipyard.app import Shipyard
from shipyard.domain.deployments import RequestCounts
from shipyard.errors import ConflictError, InvalidArgumentError
from shipyard.stores.metadata.schema import deployment_counts

URL = "http://127.0.0.1:8000"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """The time the deployment service records: T0 plus what the test moved it by."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> datetime:
        """Move to T0 + seconds and return that time."""
        self.now = T0 + timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    found = Clock()
    monkeypatch.setattr(deployments_module, "utcnow", found)
    return found


@pytest.fixture
def churn(project: Shipyard) -> Shipyard:
    """Two versions of ``churn`` and one version of ``other``."""
    table = pa.table({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.1, 1.1, 1.9, 3.2]})
    X, y = table.select(["x"]).to_pandas(), table.column("y").to_numpy()
    project.models.log_model(Ridge().fit(X, y), "churn", input_example=X[:2])
    project.models.log_model(Ridge(alpha=2.0).fit(X, y), "churn", input_example=X[:2])
    project.models.log_model(Ridge().fit(X, y), "other", input_example=X[:2])
    return project


def _start(project: Shipyard, name: str = "churn", version: int = 1) -> str:
    started = project.deployments.start(
        name=name, version=version, alias=None, url=URL, runtime="native"
    )
    return started.id


def _beats(
    project: Shipyard,
    clock: Clock,
    deployment_id: str,
    samples: Sequence[tuple[float, int, int, int]],
) -> None:
    for seconds, requests, client, server in samples:
        clock.at(seconds)
        project.deployments.heartbeat(deployment_id, RequestCounts(requests, client, server))


def _samples(project: Shipyard) -> int:
    with project.metadata.read() as conn:
        return int(conn.execute(select(func.count()).select_from(deployment_counts)).scalar_one())


def _t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_model_without_deployments_has_zero_counts_and_no_error_rate(churn: Shipyard) -> None:
    for name in ("churn", "never-deployed"):
        counts = churn.deployments.request_counts(name)
        assert counts == RequestCounts(0, 0, 0)
        assert counts.error_rate is None
    _start(churn)  # a deployment without any counts sample yet
    assert churn.deployments.request_counts("churn", 1, _t(-10), None) == RequestCounts()


def test_a_window_counts_the_growth_between_the_samples_at_its_edges(
    churn: Shipyard, clock: Clock
) -> None:
    deployment_id = _start(churn)
    _beats(churn, clock, deployment_id, [(10, 10, 1, 0), (20, 25, 2, 1), (30, 40, 4, 1)])
    clock.at(35)
    churn.deployments.stop(deployment_id, RequestCounts(45, 5, 2))
    counts = churn.deployments.request_counts
    assert counts("churn") == RequestCounts(45, 5, 2)
    assert counts("churn").error_rate == pytest.approx(7 / 45)
    assert counts("churn", None, _t(10), _t(30)) == RequestCounts(30, 3, 1)
    # edges between samples: the last sample at or before each edge
    assert counts("churn", None, _t(15), _t(25)) == RequestCounts(15, 1, 1)
    # a window opening before the deployment started counts from zero
    assert counts("churn", None, _t(-60), _t(20)) == RequestCounts(25, 2, 1)
    assert counts("churn", None, _t(30), None) == RequestCounts(5, 1, 1)  # the stop's sample
    assert counts("churn", None, _t(40), _t(50)) == RequestCounts(0, 0, 0)
    assert counts("churn", None, _t(-60), _t(5)) == RequestCounts(0, 0, 0)
    # naive datetimes are UTC, as everywhere in the store
    assert counts("churn", None, _t(10).replace(tzinfo=None), None) == RequestCounts(35, 4, 2)


def test_a_counter_that_started_again_never_counts_negative(churn: Shipyard, clock: Clock) -> None:
    deployment_id = _start(churn)
    samples = [(10, 10, 2, 0), (20, 20, 3, 1), (30, 5, 1, 0), (40, 8, 1, 1)]
    _beats(churn, clock, deployment_id, samples)
    counts = churn.deployments.request_counts
    # 20 before the drop, then 5 counted from zero, then 3 more
    assert counts("churn") == RequestCounts(28, 4, 2)
    assert counts("churn", None, _t(20), _t(40)) == RequestCounts(8, 1, 1)
    assert counts("churn", None, _t(20), _t(30)) == RequestCounts(5, 1, 0)
    # only an error counter dropping is a restart too: count the sample from zero
    _beats(churn, clock, deployment_id, [(50, 9, 0, 1)])
    assert counts("churn", None, _t(40), None) == RequestCounts(9, 0, 1)


def test_deployments_are_summed_and_selected_by_model_and_version(
    churn: Shipyard, clock: Clock
) -> None:
    one = _start(churn, version=1)
    two = _start(churn, version=2)
    other = _start(churn, name="other")
    _beats(churn, clock, one, [(10, 10, 1, 0), (20, 30, 2, 0)])
    _beats(churn, clock, two, [(10, 100, 0, 10), (20, 150, 0, 20)])
    _beats(churn, clock, other, [(10, 1000, 500, 500)])
    counts = churn.deployments.request_counts
    assert counts("churn", 1) == RequestCounts(30, 2, 0)
    assert counts("churn", 2) == RequestCounts(150, 0, 20)
    assert counts("churn") == RequestCounts(180, 2, 20)
    assert counts("churn", None, _t(10), _t(20)) == RequestCounts(70, 1, 10)
    assert counts("other") == RequestCounts(1000, 500, 500)
    assert counts("churn").error_rate == pytest.approx(22 / 180)


def test_a_deployment_that_switched_counts_under_the_version_it_serves_last(
    churn: Shipyard, clock: Clock
) -> None:
    deployment_id = _start(churn, version=1)
    _beats(churn, clock, deployment_id, [(10, 10, 0, 0)])
    clock.at(15)
    churn.deployments.switch(deployment_id, 2)
    _beats(churn, clock, deployment_id, [(20, 30, 0, 3)])
    counts = churn.deployments.request_counts
    assert counts("churn", 2) == RequestCounts(30, 0, 3)  # the documented approximation
    assert counts("churn", 1) == RequestCounts(0, 0, 0)


def test_heartbeats_and_stops_without_counts_record_no_sample(
    churn: Shipyard, clock: Clock
) -> None:
    deployment_id = _start(churn)
    clock.at(10)
    churn.deployments.heartbeat(deployment_id)
    clock.at(20)
    churn.deployments.heartbeat(deployment_id, RequestCounts(4))
    clock.at(30)
    churn.deployments.stop(deployment_id)
    assert _samples(churn) == 1
    assert churn.deployments.request_counts("churn") == RequestCounts(4, 0, 0)
    assert churn.deployments.get(deployment_id).status == "stopped"


def test_a_stopped_deployment_takes_no_more_samples(churn: Shipyard, clock: Clock) -> None:
    deployment_id = _start(churn)
    clock.at(10)
    churn.deployments.stop(deployment_id, RequestCounts(3, 1))
    clock.at(20)
    with pytest.raises(ConflictError, match="stopped"):
        churn.deployments.heartbeat(deployment_id, RequestCounts(9))
    churn.deployments.stop(deployment_id, RequestCounts(9))  # stopping again changes nothing
    assert _samples(churn) == 1
    assert churn.deployments.request_counts("churn") == RequestCounts(3, 1, 0)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"requests": -1}, "requests is a whole number >= 0"),
        ({"requests": True}, "requests is a whole number >= 0"),
        ({"requests": 2.0}, "requests is a whole number >= 0"),
        ({"requests": 2**63}, "requests is a whole number >= 0"),
        ({"requests": 5, "client_errors": -2}, "client_errors is a whole number >= 0"),
        ({"requests": 5, "server_errors": "1"}, "server_errors is a whole number >= 0"),
        ({"requests": 5, "client_errors": False}, "client_errors is a whole number >= 0"),
        ({"client_errors": 1}, "1 errors out of 0 requests"),
        ({"requests": 3, "client_errors": 2, "server_errors": 2}, "4 errors out of 3 requests"),
    ],
)
def test_bad_counts_are_refused_and_change_nothing(
    churn: Shipyard, counts: dict[str, object], message: str
) -> None:
    deployment_id = _start(churn)
    before = churn.deployments.get(deployment_id).heartbeat_at
    beat: Callable[..., None] = churn.deployments.heartbeat
    stop: Callable[..., None] = churn.deployments.stop
    for call in (beat, stop):
        with pytest.raises(InvalidArgumentError, match=message):
            call(deployment_id, RequestCounts(**counts))  # type: ignore[arg-type]
    found = churn.deployments.get(deployment_id)
    assert (found.status, found.heartbeat_at) == ("running", before)
    assert _samples(churn) == 0


def test_bad_windows_and_references_are_refused(churn: Shipyard) -> None:
    with pytest.raises(InvalidArgumentError, match=r"starts .* after it ends"):
        churn.deployments.request_counts("churn", None, _t(10), _t(5))
    with pytest.raises(InvalidArgumentError, match="model version"):
        churn.deployments.request_counts("churn", 0)
    with pytest.raises(InvalidArgumentError, match="model name"):
        churn.deployments.request_counts("../churn")


def test_request_counts_read_as_json_with_their_error_rate() -> None:
    assert RequestCounts(8, 1, 1).to_dict() == {
        "requests": 8,
        "client_errors": 1,
        "server_errors": 1,
        "error_rate": 0.25,
    }
    assert RequestCounts().to_dict()["error_rate"] is None
    assert RequestCounts(1, 1, 0) + RequestCounts(2, 0, 1) == RequestCounts(3, 1, 1)


def test_counts_of_another_type_are_refused_and_change_nothing(churn: Shipyard) -> None:
    deployment_id = _start(churn)
    for call in (churn.deployments.heartbeat, churn.deployments.stop):
        with pytest.raises(InvalidArgumentError, match="counts are RequestCounts, not dict"):
            call(deployment_id, {"requests": 3})  # type: ignore[arg-type]
    assert churn.deployments.get(deployment_id).status == "running"
    assert _samples(churn) == 0
