"""Registry gaps: a registered model's description and tags, and the ONNX rejection path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from shipyard.app import Shipyard
from shipyard.errors import (
    InvalidArgumentError,
    InvalidNameError,
    NotFoundError,
    NotSupportedError,
)
from shipyard.services.flavors.onnx import FILE as ONNX_FILE
from shipyard.services.flavors.sklearn import SklearnFlavor
from shipyard.services.models import ONNX_TOLERANCE


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y


def _updates(project: Shipyard) -> list[Any]:
    return [e for e in project.audit.list(limit=1000) if e.action == "model.update"]


def test_update_model_sets_the_description_merges_tags_and_audits_before_and_after(
    project: Shipyard, diabetes: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = diabetes
    project.models.log_model(Ridge().fit(X, y), "churn", onnx=False)
    fresh = project.registry.model("churn")
    assert (fresh.description, dict(fresh.tags), fresh.latest_version) == (None, {}, 1)

    updated = project.registry.update_model(
        "churn", description="Who leaves next month", tags={"team": "growth", "tier": "gold"}
    )
    assert updated.description == "Who leaves next month"
    assert dict(updated.tags) == {"team": "growth", "tier": "gold"}
    assert updated.latest_version == 1 and updated.created_by == "alice"

    # Merged: tags not named stay; None and "" remove; the description is kept when left out.
    again = project.registry.update_model(
        "churn", tags={"tier": None, "owner": "ana", "gone": "", "team": "retention"}
    )
    assert again.description == "Who leaves next month"
    assert dict(again.tags) == {"owner": "ana", "team": "retention"}
    [listed] = project.registry.models()
    assert listed.to_dict() == project.registry.model("churn").to_dict() == again.to_dict()

    cleared = project.registry.update_model("churn", description="")
    assert cleared.description is None
    assert dict(cleared.tags) == {"owner": "ana", "team": "retention"}

    entries = _updates(project)
    assert [(e.actor, e.entity_kind, e.entity_id) for e in entries] == [
        ("alice", "registered_model", "churn")
    ] * 3
    assert entries[0].before == {"description": None, "tags": {}}
    assert entries[0].after == {
        "description": "Who leaves next month",
        "tags": {"team": "growth", "tier": "gold"},
    }
    assert entries[1].before["tags"] == {"team": "growth", "tier": "gold"}
    assert entries[1].after["tags"] == {"owner": "ana", "team": "retention"}
    assert entries[2].after == {"description": None, "tags": {"owner": "ana", "team": "retention"}}
    assert project.audit.verify().ok

    # Nothing changes: nothing is written.
    same = project.registry.update_model("churn", tags={"owner": "ana", "absent": None})
    assert same.to_dict() == cleared.to_dict()
    assert len(_updates(project)) == 3
    # A new version leaves the model's own description and tags alone.
    project.models.log_model(Ridge(alpha=2.0).fit(X, y), "churn", onnx=False, tags={"v": "2"})
    after = project.registry.model("churn")
    assert after.latest_version == 2 and dict(after.tags) == {"owner": "ana", "team": "retention"}


def test_update_model_refuses_unknown_models_and_bad_values_and_changes_nothing(
    project: Shipyard, diabetes: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = diabetes
    project.models.log_model(Ridge().fit(X, y), "churn", onnx=False)
    project.registry.update_model("churn", description="kept", tags={"team": "growth"})
    with pytest.raises(NotFoundError, match="model 'nobody' does not exist"):
        project.registry.update_model("nobody", description="x")
    with pytest.raises(NotFoundError, match="model 'nobody' does not exist"):
        project.registry.model("nobody")
    with pytest.raises(InvalidNameError):
        project.registry.update_model("../etc", description="x")
    with pytest.raises(InvalidArgumentError, match="description"):
        project.registry.update_model("churn", description="a\x00b")
    with pytest.raises(InvalidArgumentError, match="at most 100,000"):
        project.registry.update_model("churn", description="x" * 100_001)
    with pytest.raises(InvalidArgumentError, match="tag name cannot be empty"):
        project.registry.update_model("churn", tags={"": "x"})
    with pytest.raises(InvalidArgumentError, match="tag 'team'"):
        project.registry.update_model("churn", tags={"team": 5})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError, match="tag 'team'"):
        project.registry.update_model("churn", description="new", tags={"team": "x" * 6001})
    model = project.registry.model("churn")
    assert (model.description, dict(model.tags)) == ("kept", {"team": "growth"})
    assert len(_updates(project)) == 1


def test_an_onnx_export_beyond_the_tolerance_is_rejected_not_attached_and_says_why(
    project: Shipyard,
    diabetes: tuple[pd.DataFrame, pd.Series],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y = diabetes
    model = Ridge(alpha=1.0).fit(X, y)
    # A valid ONNX graph of a slightly different model: what a converter bug would produce.
    drifted = Ridge(alpha=1.05).fit(X, y)
    convert = SklearnFlavor.to_onnx

    def export_the_drifted_model(self: SklearnFlavor, _model: Any, example: Any) -> bytes:
        return convert(self, drifted, example)

    monkeypatch.setattr(SklearnFlavor, "to_onnx", export_the_drifted_model)
    with project.runs.start_run("onnx", capture=False) as run:
        version = run.log_model(model, "drifty", input_example=X[:5], training_sample=X)

    rows = pd.concat([X[:5], X[:1000]])
    expected = float(np.max(np.abs(model.predict(rows) - drifted.predict(rows))))
    assert expected > 100 * ONNX_TOLERANCE, "the two models must differ well beyond it"
    assert version.onnx_status == "rejected"
    assert version.onnx_max_diff == pytest.approx(expected, rel=1e-3)
    assert version.onnx_reason == (
        f"ONNX predictions differ by up to {version.onnx_max_diff:.3g} "
        f"(tolerance {ONNX_TOLERANCE:g})"
    )
    stored = project.registry.resolve("drifty@1")
    assert (stored.onnx_status, stored.onnx_max_diff, stored.onnx_reason) == (
        "rejected",
        version.onnx_max_diff,
        version.onnx_reason,
    )
    files = [f["path"] for f in project.models.files(stored)]
    assert ONNX_FILE not in files and "model.skops" in files
    with pytest.raises(NotSupportedError, match="rejected"):
        project.models.load("drifty@1", runtime="onnx")
    native = project.models.load("drifty@1")
    np.testing.assert_allclose(native.predict(X[:10]), model.predict(X[:10]))
    [entry] = [e for e in project.audit.list(limit=1000) if e.action == "model.register"]
    assert entry.after["onnx"] == "rejected"
