from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import Ridge

from shipyard.app import Shipyard, build
from shipyard.domain.lineage import Node
from shipyard.errors import (
    ConflictError,
    CorruptBlobError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.services.flavors.python import ModelContext, PythonModel


class Doubler(PythonModel):
    def load_context(self, context: ModelContext) -> None:
        self.factor = float(Path(context.artifacts["factor"]).read_text())

    def predict(self, context: ModelContext, model_input: Any) -> Any:
        return np.asarray(model_input["x"]) * self.factor


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


def test_a_sklearn_model_is_logged_with_signature_onnx_and_lineage(
    project: Shipyard, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    model = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(X, y)
    dataset = project.datasets.add("cancer", X.assign(target=y)).version
    with project.runs.start_run("churn", capture=False) as run:
        run.use_dataset(dataset.ref)
        version = run.log_model(model, "cancer-rf", input_example=X[:5], training_sample=X)
    assert version.ref == "cancer-rf@1" and version.flavor == "sklearn"
    assert version.signature is not None
    assert [c.name for c in version.signature.inputs] == list(X.columns)
    assert any(r.startswith("scikit-learn==") for r in version.requirements)
    assert version.onnx_status == "attached"
    assert version.onnx_max_diff is not None and version.onnx_max_diff < 1e-4
    native = project.models.load("cancer-rf@1")
    onnx = project.models.load("cancer-rf@latest", runtime="onnx")
    np.testing.assert_array_equal(native.predict(X[:50]), onnx.predict(X[:50]))
    graph = project.lineage.graph(Node("model_version", "cancer-rf@1"))
    assert {(e.source.id, e.relation) for e in graph.upstream} == {
        (run.id, "produced"),
        ("cancer@1", "consumed_by"),
    }


def test_a_model_without_a_converter_keeps_the_native_flavor_and_says_why(
    project: Shipyard, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    model = HistGradientBoostingClassifier(max_iter=10).fit(X, y)
    version = project.models.log_model(model, "hgb", input_example=X[:5])
    assert version.onnx_status in ("unavailable", "rejected")
    assert version.onnx_reason
    assert project.models.load("hgb@1").predict(X[:3]).shape == (3,)


def test_a_regressor_round_trips(project: Shipyard) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(X, y)
    version = project.models.log_model(model, "ridge", input_example=X[:10])
    assert version.onnx_status == "attached"
    loaded = project.models.load("ridge@1", runtime="onnx")
    np.testing.assert_allclose(loaded.predict(X[:10]).ravel(), model.predict(X[:10]), rtol=1e-4)


def test_python_and_onnx_flavors(project: Shipyard, tmp_path: Path) -> None:
    factor = tmp_path / "factor.txt"
    factor.write_text("2.5")
    model = Doubler()
    model.artifacts = {"factor": str(factor)}
    version = project.models.log_model(model, "doubler")
    assert version.flavor == "python" and version.onnx_status == "unavailable"
    assert list(project.models.load("doubler@1").predict({"x": [1.0, 2.0]})) == [2.5, 5.0]
    ridge = project.models.load("doubler@1")
    assert ridge is not None
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    from skl2onnx import to_onnx

    proto = to_onnx(Ridge().fit(X, y), X[:1].to_numpy(np.float32))
    onnx_version = project.models.log_model(proto, "raw-onnx")
    assert onnx_version.flavor == "onnx"
    assert project.models.load("raw-onnx@1").predict(X[:4]).shape[0] == 4


def test_unknown_flavors_and_unsupported_models_are_refused(project: Shipyard) -> None:
    with pytest.raises(
        InvalidArgumentError, match="supported flavors: lightning, onnx, python, pytorch, sklearn"
    ):
        project.models.log_model(Ridge(), "m", flavor="tensorflow")
    with pytest.raises(InvalidArgumentError, match=r"no flavor saves a builtins\.dict"):
        project.models.log_model({"not": "a model"}, "m")
    with pytest.raises(NotFoundError):
        project.registry.versions("m")


def test_a_corrupt_model_blob_is_refused_at_load_and_found_by_fsck(
    project: Shipyard, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    project.models.log_model(Ridge().fit(X, y), "broken", onnx=False)
    version = project.registry.resolve("broken@1")
    skops_file = next(f for f in project.models.files(version) if f["path"] == "model.skops")
    row = project.objects.known({skops_file["digest"]})
    assert row
    for digest in list(project.content.digests()):
        blob = project.content.blobs.root.joinpath(  # type: ignore[attr-defined]
            *project.content.key_of(digest).split("/")
        )
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
    with pytest.raises(CorruptBlobError):
        project.models.load("broken@1")
    assert not project.maintenance.fsck().ok


def test_a_cached_model_file_altered_or_lost_is_fetched_again(
    project: Shipyard, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    project.models.log_model(Ridge().fit(X, y), "cached", onnx=False)
    version = project.registry.resolve("cached@1")
    folder = project.models.path(version)
    skops = folder / "model.skops"
    good = skops.read_bytes()
    skops.chmod(0o644)
    skops.write_bytes(b"not the model")
    expected = project.models.load("cached@1").predict(X[:3])
    assert skops.read_bytes() == good
    skops.unlink()
    assert project.models.path(version) == folder and skops.read_bytes() == good
    assert list(project.models.load("cached@1").predict(X[:3])) == list(expected)


def _as(project: Shipyard, user: str) -> Shipyard:
    return build(project.settings.model_copy(update={"user": user}))


@pytest.fixture
def people(project: Shipyard) -> Iterator[dict[str, Shipyard]]:
    project.users.create("alice", ["admin"])
    project.users.create("bob", ["approver"])
    project.users.create("carol", ["editor"])
    opened = {"alice": project, "bob": _as(project, "bob"), "carol": _as(project, "carol")}
    yield opened
    opened["bob"].close()
    opened["carol"].close()


def test_promotion_needs_an_approver_who_is_not_the_requester(
    project: Shipyard, people: dict[str, Shipyard], cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    for _ in range(2):
        project.models.log_model(Ridge().fit(X, y), "churn", onnx=False)
    carol = people["carol"]
    with pytest.raises(PermissionDeniedError, match="protected"):
        carol.registry.set_stage("churn@1", "production")
    with pytest.raises(PermissionDeniedError, match="protected"):
        carol.registry.set_alias("churn@1", "champion")
    request = carol.registry.request("churn@1", "production", "beats the baseline")
    with pytest.raises(PermissionDeniedError, match="does not hold the approver role"):
        carol.registry.approve(request.id)
    bob = people["bob"]
    own = bob.registry.request("churn@2", "champion", "try it")
    with pytest.raises(PermissionDeniedError, match="two-person rule"):
        bob.registry.approve(own.id)
    assert project.registry.resolve("churn@1").stage == "none", "nothing changed"
    approved = bob.registry.approve(request.id, "ok")
    assert approved.status == "approved" and approved.decided_by == "bob"
    assert project.registry.resolve("churn@production").version == 1
    project.registry.approve(own.id)  # alice (admin) decides bob's request
    assert project.registry.resolve("churn@champion").version == 2
    second = carol.registry.request("churn@2", "production", "newer")
    bob.registry.approve(second.id)
    stages = {v.version: v.stage for v in project.registry.versions("churn")}
    assert stages == {1: "archived", 2: "production"}
    actions = [e.action for e in project.audit.list(limit=1000)]
    assert actions.count("model.approve") == 3
    assert "model.stage" in actions and "model.alias" in actions
    assert project.audit.verify().ok
    with pytest.raises(ConflictError, match="approved already"):
        bob.registry.reject(second.id)


def test_unprotected_aliases_and_stages_move_directly(
    project: Shipyard, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    for _ in range(3):
        project.models.log_model(Ridge().fit(X, y), "m", onnx=False)
    project.registry.set_alias("m@1", "challenger")
    project.registry.set_alias("m@3", "challenger")
    assert project.registry.resolve("m@challenger").version == 3
    assert project.registry.set_stage("m@2", "staging").stage == "staging"
    with pytest.raises(NotFoundError, match="no alias or stage 'nobody'"):
        project.registry.resolve("m@nobody")
    with pytest.raises(NotFoundError, match="versions 1 to 3"):
        project.registry.resolve("m@9")
    with pytest.raises(InvalidArgumentError):
        project.registry.set_alias("m@1", "latest")


_RACE_MODEL = """
from shipyard.services.flavors.python import PythonModel


class Constant(PythonModel):
    def predict(self, context, model_input):
        return 1
"""

_REGISTER = """
import sys, time, pathlib
sys.path.insert(0, sys.argv[4])
from racemodel import Constant
from shipyard.settings import Settings
from shipyard.app import build
root, uri, start = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
project = build(Settings.load(root, env={}, metadata_uri=uri))
while not start.exists():
    time.sleep(0.005)
print(project.models.log_model(Constant(), "race").version)
"""


def test_twenty_processes_registering_at_once_get_contiguous_numbers(
    project: Shipyard, tmp_path: Path
) -> None:
    start = tmp_path / "go"
    (tmp_path / "racemodel.py").write_text(_RACE_MODEL)
    args = [str(project.settings.root), project.settings.metadata_uri, str(start), str(tmp_path)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _REGISTER, *args], stdout=subprocess.PIPE, text=True
        )
        for _ in range(20)
    ]
    import time

    time.sleep(2.0)
    start.touch()
    numbers = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        numbers.append(int(out.strip()))
    assert sorted(numbers) == list(range(1, 21))


def test_a_requester_can_cancel_and_others_cannot(
    project: Shipyard, people: dict[str, Shipyard], cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    project.models.log_model(Ridge().fit(X, y), "c", onnx=False)
    request = people["carol"].registry.request("c@1", "production", "try")
    with pytest.raises(PermissionDeniedError):
        people["bob"].registry.cancel(request.id)
    assert people["carol"].registry.cancel(request.id).status == "cancelled"
    with pytest.raises(ConflictError):
        people["bob"].registry.approve(request.id)


def test_use_dataset_records_the_numbered_version_and_refuses_unknown_ones(
    project: Shipyard,
) -> None:
    import pyarrow as pa

    from shipyard.errors import DatasetNotFoundError

    project.datasets.add("d", pa.table({"a": [1]}))
    with project.runs.start_run("e", capture=False) as run:
        run.use_dataset("d@latest")
        with pytest.raises(DatasetNotFoundError):
            run.use_dataset("nope@1")
    graph = project.lineage.graph(Node("run", run.id))
    assert [e.source.id for e in graph.upstream] == ["d@1"]


def test_a_python_model_class_from_main_is_refused(project: Shipyard) -> None:
    main_class = type(
        "InMain",
        (PythonModel,),
        {"__module__": "__main__", "predict": lambda self, context, model_input: 1},
    )
    with pytest.raises(InvalidArgumentError, match="__main__"):
        project.models.log_model(main_class(), "m")


def test_lineage_walks_a_dataset_used_by_many_runs(project: Shipyard) -> None:
    from shipyard.domain.lineage import Node as N

    with project.metadata.write() as conn:
        for i in range(1200):
            project.lineage.link(
                conn,
                N("dataset_version", "big@1"),
                "consumed_by",
                N("run", f"r{i}"),
                actor="alice",
            )
            project.lineage.link(
                conn,
                N("run", f"r{i}"),
                "produced",
                N("model_version", f"m@{i + 1}"),
                actor="alice",
            )
    graph = project.lineage.graph(N("dataset_version", "big@1"))
    assert len(graph.downstream) == 2400
