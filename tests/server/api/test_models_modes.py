"""The same model and registry tests in local mode and in remote mode (a real server)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from shipyard.client import RemoteProject
from shipyard.errors import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.services.objects import StoredFile

from .conftest import Team


@dataclass
class Side:
    """The services a test uses, from the local project or through the server."""

    runs: Any
    models: Any
    registry: Any
    user: str


@pytest.fixture(params=["local", "remote"])
def side(request: pytest.FixtureRequest, team: Team) -> Iterator[Side]:
    if request.param == "local":
        p = team.project
        yield Side(p.runs, p.models, p.registry, p.user)
        return
    with RemoteProject(team.url, team.tokens["editor"]) as remote:
        yield Side(remote.runs, remote.models, remote.registry, "eddie")


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, Any]:
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :8]
    model = LogisticRegression(max_iter=2000).fit(X, data.target)
    return model, X


def test_a_model_logged_in_a_run_is_registered_and_loads_in_both_runtimes(
    side: Side, fitted: tuple[Any, Any]
) -> None:
    model, X = fitted
    with side.runs.start_run("models", capture=False) as run:
        version = run.log_model(model, "cancer", input_example=X[:5], training_sample=X)
    assert version.ref == "cancer@1" and version.run_id == run.id
    assert version.created_by == side.user
    assert version.onnx_status == "attached" and version.onnx_max_diff is not None
    assert version.signature is not None and len(version.signature.inputs) == 8
    native = side.models.load("cancer@1")
    np.testing.assert_array_equal(native.predict(X[:50]), model.predict(X[:50]))
    onnx = side.models.load("cancer@latest", runtime="onnx")
    np.testing.assert_array_equal(np.asarray(onnx.predict(X[:50])), model.predict(X[:50]))
    names = {f["path"] for f in side.models.files(version)}
    assert {"shipyard-model.json", "input_example.json", "model.onnx"} <= names


def test_aliases_stages_and_a_promotion_with_a_second_person(
    side: Side, team: Team, fitted: tuple[Any, Any]
) -> None:
    model, X = fitted
    side.models.log_model(model, "risk", input_example=X[:5])
    side.models.log_model(model, "risk", input_example=X[:5], description="second")
    assert side.registry.set_alias("risk@1", "candidate").aliases == ("candidate",)
    assert side.registry.resolve("risk@candidate").version == 1
    assert side.registry.set_stage("risk@2", "staging").stage == "staging"
    assert [v.version for v in side.registry.versions("risk")] == [1, 2]
    assert [m.name for m in side.registry.models()] == ["risk"]
    with pytest.raises(PermissionDeniedError, match="champion"):
        side.registry.set_alias("risk@2", "champion")
    asked = side.registry.request("risk@2", "champion", "better recall")
    assert asked.status == "pending" and asked.requested_by == side.user
    assert [r.id for r in side.registry.requests(name="risk")] == [asked.id]
    with RemoteProject(team.url, team.tokens["approver"]) as approver:
        decided = approver.registry.approve(asked.id, "looks good")
    assert decided.status == "approved" and decided.decided_by == "april"
    assert side.registry.resolve("risk@champion").version == 2
    again = side.registry.request("risk@1", "champion", "roll back")
    assert side.registry.cancel(again.id).status == "cancelled"
    with pytest.raises(NotFoundError):
        side.registry.resolve("risk@9")
    with pytest.raises(NotFoundError):
        side.models.load("nothing@1")


def test_the_server_registers_only_what_fits_the_uploaded_files(
    team: Team, fitted: tuple[Any, Any]
) -> None:
    model, X = fitted
    with RemoteProject(team.url, team.tokens["editor"]) as remote:
        meta = remote.transfers.upload_bytes(b'{"flavor": "sklearn"}')
        files = [StoredFile("shipyard-model.json", 21, meta)]
        report = {"status": "unavailable", "reason": "none"}
        options: dict[str, Any] = {"signature": None, "requirements": [], "onnx": report}
        with pytest.raises(InvalidArgumentError, match="flavor"):
            remote.models.register_stored("bad", files, flavor="no-such-flavor", **options)
        with pytest.raises(InvalidArgumentError, match=r"shipyard-model\.json"):
            remote.models.register_stored(
                "bad", [StoredFile("other.json", 21, meta)], flavor="sklearn", **options
            )
        attached = options | {"onnx": {"status": "attached", "max_diff": 0.0}}
        with pytest.raises(InvalidArgumentError, match=r"model\.onnx"):
            remote.models.register_stored("bad", files, flavor="sklearn", **attached)
        ghost = [*files, StoredFile("model.skops", 5, "blake3:" + "cd" * 32)]
        with pytest.raises(NotFoundError, match="upload them first"):
            remote.models.register_stored("bad", ghost, flavor="sklearn", **options)
        with pytest.raises(InvalidArgumentError):
            remote.models.register_stored(
                "bad", [*files, StoredFile("../x", 21, meta)], flavor="sklearn", **options
            )
    with pytest.raises(NotFoundError):
        team.project.registry.versions("bad")
    with (
        RemoteProject(team.url, team.tokens["viewer"]) as viewer,
        pytest.raises(PermissionDeniedError, match="vic"),
    ):
        viewer.models.log_model(model, "viewer-made", input_example=X[:5])
