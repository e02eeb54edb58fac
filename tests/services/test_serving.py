from __future__ import annotations

import asyncio
import io
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier

from shipyard.app import Shipyard
from shipyard.domain.models import ColumnSpec, Signature
from shipyard.errors import (
    CorruptBlobError,
    InvalidArgumentError,
    MalformedBodyError,
    NotFoundError,
    NotSupportedError,
    PredictionInputError,
)
from shipyard.services.flavors.python import ModelContext, PythonModel
from shipyard.services.serving import BatchOptions, ModelServer, Output, ServedModel
from shipyard.services.serving_inputs import ARROW, CSV, JSON, Frame, InputSchema


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


@pytest.fixture(scope="module")
def classifier(cancer: tuple[pd.DataFrame, pd.Series]) -> RandomForestClassifier:
    X, y = cancer
    return RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(X, y)


SCHEMA = InputSchema(
    Signature(
        (
            ColumnSpec("age", "int64"),
            ColumnSpec("income", "float64"),
            ColumnSpec("score", "float64", nullable=True),
            ColumnSpec("member", "bool"),
            ColumnSpec("city", "string"),
        )
    )
)
GOOD = {"age": 30, "income": 1.5, "score": None, "member": True, "city": "Oslo"}


@pytest.mark.parametrize(
    ("change", "column", "problem"),
    [
        ({"age": None}, "age", "null in row 0"),
        ({"income": "1.5"}, "income", "wrong type in row 0: expected float64, got string"),
        ({"income": math.nan}, "income", "NaN in row 0 where the signature forbids"),
        ({"age": 2.5}, "age", "expected int64, got number"),
        ({"member": 1}, "member", "expected bool, got integer"),
        ({"city": 7}, "city", "expected string, got integer"),
        ({"extra": 1}, "extra", "unknown"),
    ],
)
def test_records_that_break_the_signature_name_the_column_and_the_problem(
    change: dict[str, Any], column: str, problem: str
) -> None:
    with pytest.raises(PredictionInputError, match=problem) as caught:
        SCHEMA.from_records([{**GOOD, **change}])
    assert caught.value.column == column


def test_a_missing_column_is_named() -> None:
    record = {k: v for k, v in GOOD.items() if k != "income"}
    with pytest.raises(PredictionInputError, match="'income': missing") as caught:
        SCHEMA.from_records([record])
    assert caught.value.column == "income"


def test_nullable_columns_take_null_and_mixed_types_become_columns() -> None:
    frame = SCHEMA.from_records([GOOD, {**GOOD, "score": 2.0, "city": "Rome"}])
    assert frame.rows == 2 and frame.matrix is None and frame.columns is not None
    assert np.isnan(frame.columns["score"][0]) and frame.columns["score"][1] == 2.0
    assert frame.columns["city"].tolist() == ["Oslo", "Rome"]
    assert frame.to_pandas()["age"].tolist() == [30, 30]


def test_json_csv_and_arrow_bodies_give_the_same_rows() -> None:
    schema = InputSchema(Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "int64"))))
    rows = [{"a": 1.5, "b": 2}, {"a": -3.0, "b": 4}]
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    bodies = {
        JSON: b'{"records": [{"a": 1.5, "b": 2}, {"a": -3.0, "b": 4}]}',
        "application/json; charset=utf-8": b'{"columns": {"a": [1.5, -3.0], "b": [2, 4]}}',
        "": b'[{"b": 2, "a": 1.5}, {"b": 4, "a": -3.0}]',
        CSV: b"b,a\n2,1.5\n4,-3.0\n",
        ARROW: sink.getvalue(),
    }
    for media, body in bodies.items():
        frame = schema.parse(body, media)
        assert frame.matrix is not None, media
        assert frame.matrix.tolist() == [[1.5, 2.0], [-3.0, 4.0]], media


@pytest.mark.parametrize(
    ("body", "media", "error", "match"),
    [
        (b'{"records": [', JSON, MalformedBodyError, "malformed application/json body"),
        (b"\xff\xfe", JSON, MalformedBodyError, "malformed application/json body"),
        (b"not arrow at all", ARROW, MalformedBodyError, "malformed application/vnd.apache"),
        (b'a,b\n1,2,3\n"', CSV, MalformedBodyError, "malformed text/csv body"),
        (b'{"rows": []}', JSON, InvalidArgumentError, "send"),
        (b'{"records": []}', JSON, InvalidArgumentError, "non-empty list"),
        (b'{"records": [1]}', JSON, InvalidArgumentError, "record 0 is a integer"),
        (b"a,b\nx,2\n", CSV, PredictionInputError, "'a': wrong type: expected float64, got string"),
        (b"a,b\n,2\n", CSV, PredictionInputError, "'a': 1 missing value"),
        (b"a,c\n1,2\n", CSV, PredictionInputError, "'b': missing"),
        (b'{"columns": {"a": [1.0], "b": [1, 2]}}', JSON, InvalidArgumentError, "one length"),
    ],
)
def test_malformed_and_mismatched_bodies_are_refused_clearly(
    body: bytes, media: str, error: type[Exception], match: str
) -> None:
    schema = InputSchema(Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "int64"))))
    with pytest.raises(error, match=match):
        schema.parse(body, media)


def test_auto_runtime_is_onnx_when_an_export_is_attached_else_native(
    project: Shipyard, cancer: tuple[pd.DataFrame, pd.Series], classifier: Any
) -> None:
    X, _ = cancer
    project.models.log_model(classifier, "rf", input_example=X[:5], training_sample=X)
    project.models.log_model(classifier, "rf-native", input_example=X[:5], onnx=False)
    onnx = ModelServer(project.registry, project.models, "rf@1").load()
    native = ModelServer(project.registry, project.models, "rf-native@latest").load()
    assert (onnx.runtime, native.runtime) == ("onnx", "native")
    frame = onnx.schema.from_records(X[:20].to_dict(orient="records"))
    a, b = onnx.predict(frame), native.predict(frame)
    assert a.predictions == b.predictions == classifier.predict(X[:20]).tolist()
    assert a.probabilities is not None and b.probabilities is not None
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
    with pytest.raises(
        NotSupportedError, match=r"rf-native@1 \(ONNX export unavailable.*--runtime native"
    ):
        ModelServer(project.registry, project.models, "rf-native@1", runtime="onnx").load()
    with pytest.raises(InvalidArgumentError, match="runtime is one of auto, onnx, native"):
        ModelServer(project.registry, project.models, "rf@1", runtime="torch")


def test_unknown_models_and_aliases_are_not_found(project: Shipyard) -> None:
    with pytest.raises(NotFoundError):
        ModelServer(project.registry, project.models, "nope@champion").load()


def test_a_corrupt_model_blob_is_refused_with_its_digest(
    project: Shipyard, cancer: tuple[pd.DataFrame, pd.Series], classifier: Any
) -> None:
    X, _ = cancer
    project.models.log_model(classifier, "broken", input_example=X[:5], onnx=False)
    corrupt_every_blob(project)
    with pytest.raises(CorruptBlobError, match=r"blob \S+ is corrupt: its content hashes to"):
        ModelServer(project.registry, project.models, "broken@1").load()


def corrupt_every_blob(project: Shipyard) -> None:
    for digest in list(project.content.digests()):
        blob = project.content.blobs.root.joinpath(  # type: ignore[attr-defined]
            *project.content.key_of(digest).split("/")
        )
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))


def _run_batched(served: ServedModel, frames: list[Frame]) -> list[Output]:
    async def go() -> list[Output]:
        assert served.batcher is not None
        return list(await asyncio.gather(*(served.batcher.submit(f) for f in frames)))

    return asyncio.run(go())


@pytest.mark.parametrize("runtime", ["onnx", "native"])
def test_micro_batched_results_equal_one_by_one_results(
    project: Shipyard, cancer: tuple[pd.DataFrame, pd.Series], classifier: Any, runtime: str
) -> None:
    X, _ = cancer
    project.models.log_model(classifier, "rf", input_example=X[:5], training_sample=X)
    sizes: list[int] = []
    batched = ModelServer(
        project.registry,
        project.models,
        "rf@1",
        runtime=runtime,
        batching=BatchOptions(max_batch=16, max_wait_us=2000),
        on_batch=sizes.append,
    ).load()
    alone = ModelServer(
        project.registry, project.models, "rf@1", runtime=runtime, batching=BatchOptions(False)
    ).load()
    assert alone.batcher is None
    frames = [batched.schema.from_records([r]) for r in X[:100].to_dict(orient="records")]
    together = _run_batched(batched, frames)
    one_by_one = [alone.predict(f) for f in frames]
    assert together == one_by_one
    assert max(sizes) > 1 and max(sizes) <= 16 and sum(sizes) == 100


def test_a_batch_that_fails_fails_every_request_in_it() -> None:
    def broken(frame: Frame) -> Output:
        raise RuntimeError("model exploded")

    from shipyard.services.serving_batching import MicroBatcher

    batcher: MicroBatcher[Output] = MicroBatcher(broken, Output.split, BatchOptions())
    frame = Frame(1, ("a",), np.zeros((1, 1)))

    async def go() -> list[Any]:
        return await asyncio.gather(
            batcher.submit(frame), batcher.submit(frame), return_exceptions=True
        )

    results = asyncio.run(go())
    assert [str(r) for r in results] == ["model exploded", "model exploded"]


def test_refresh_switches_to_the_version_the_alias_moved_to(
    project: Shipyard, cancer: tuple[pd.DataFrame, pd.Series], classifier: Any
) -> None:
    X, _ = cancer
    project.models.log_model(classifier, "m", input_example=X[:5], onnx=False)
    project.registry.set_alias("m@1", "live")
    server = ModelServer(project.registry, project.models, "m@live")
    first = server.load()
    assert server.follows and server.refresh() is None
    project.models.log_model(classifier, "m", input_example=X[:5], onnx=False)
    project.registry.set_alias("m@2", "live")
    second = server.refresh()
    assert second is not None and second.version.version == 2
    assert server.current is second and first.version.version == 1
    assert not ModelServer(project.registry, project.models, "m@2").follows


def test_a_regressor_without_onnx_serves_natively(project: Shipyard) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = HistGradientBoostingRegressor(max_iter=5).fit(X, y)
    project.models.log_model(model, "hgb", input_example=X[:5])
    served = ModelServer(project.registry, project.models, "hgb@1").load()
    out = served.predict(served.schema.from_records(X[:3].to_dict(orient="records")))
    assert served.runtime == "native" and out.probabilities is None
    np.testing.assert_allclose(out.predictions, model.predict(X[:3]))


class Total(PythonModel):
    def predict(self, context: ModelContext, model_input: Any) -> Any:
        return model_input["a"] + model_input["b"]


def test_python_models_are_served_natively_and_never_batched(project: Shipyard) -> None:
    example = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    project.models.log_model(Total(), "total", input_example=example)
    served = ModelServer(project.registry, project.models, "total@1").load()
    assert (served.runtime, served.batcher) == ("native", None)
    out = served.predict(served.schema.from_json({"columns": {"a": [1.0, 5.0], "b": [2.0, 0.5]}}))
    assert out.predictions == [3.0, 5.5] and out.probabilities is None
