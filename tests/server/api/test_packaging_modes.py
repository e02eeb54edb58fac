"""Packaging in local mode and in remote mode (a real server): the bundle is written here from
files downloaded by digest and verified, and is the bundle a local project writes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from shipyard.client import RemoteProject
from shipyard.errors import (
    AlreadyExistsError,
    InvalidReferenceError,
    NotFoundError,
)
from shipyard.services.packaging_bundle import MANIFEST, open_bundle

from .conftest import Invoke, Team


@pytest.fixture
def churn(team: Team) -> Team:
    """A server whose project holds ``churn@1`` (ONNX attached), logged by its own user."""
    X, y = make_classification(n_samples=300, n_features=5, random_state=0)
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    version = team.project.models.log_model(model, "churn", input_example=X[:5], training_sample=X)
    assert version.onnx_status == "attached"
    team.project.registry.set_alias("churn@1", "candidate")
    return team


def _manifest(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    return data


def test_a_remote_bundle_is_the_bundle_a_local_project_writes(churn: Team, tmp_path: Path) -> None:
    local = churn.project.packages.package("churn@1", tmp_path / "local")
    with RemoteProject(churn.url, churn.tokens["viewer"]) as remote:
        far = remote.packages.package("churn@candidate", tmp_path / "remote")
    assert far.folder == tmp_path / "remote" and far.version == local.version
    assert (far.runtime, far.requirements, far.wheel) == (
        local.runtime,
        local.requirements,
        local.wheel,
    )
    assert far.files == local.files  # every file: same paths, sizes and digests
    here, there = _manifest(tmp_path / "local"), _manifest(tmp_path / "remote")
    assert there["files"] == here["files"]
    assert {f["path"] for f in there["files"]} >= {"model/model.onnx", "serve.py", "Dockerfile"}
    for key in ("reference", "flavor", "signature", "onnx", "manifest_digest", "id"):
        assert there["model"][key] == here["model"][key], key
    assert there["model"]["requested"] == "churn@candidate"
    assert (here["created_by"], there["created_by"]) == (churn.project.user, "vic")
    bundle = open_bundle(tmp_path / "remote")  # every file checked against the manifest
    assert (bundle.ref, bundle.runtime) == ("churn@1", "onnx")


def test_remote_packaging_refuses_bad_input_and_writes_nothing(
    churn: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The download cache in this test's folder: the file tampered with below stays there.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "out"
    with RemoteProject(churn.url, churn.tokens["viewer"]) as remote:
        with pytest.raises(NotFoundError, match="churn"):
            remote.packages.package("churn@9", out)
        with pytest.raises(InvalidReferenceError):
            remote.packages.package("../churn@1", out)
        assert not out.exists()
        (out / "keep.txt").parent.mkdir()
        (out / "keep.txt").write_text("mine")
        with pytest.raises(AlreadyExistsError, match="--force"):
            remote.packages.package("churn@1", out)
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
        # A downloaded file altered in the cache never reaches a bundle: the cached copy
        # is checked and downloaded again.
        version = remote.registry.resolve("churn@1")
        folder = remote.models.path(version)
        onnx = folder / "model.onnx"
        good = onnx.read_bytes()
        onnx.chmod(0o644)
        onnx.write_bytes(b"tampered")
        made = remote.packages.package("churn@1", tmp_path / "other")
        assert (made.folder / "model" / "model.onnx").read_bytes() == good
        assert onnx.read_bytes() == good  # the cache itself was mended
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_the_package_command_works_through_the_server(remote_cli: Invoke, churn: Team) -> None:
    result = remote_cli("package", "churn@1", "-o", "build", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["model"], report["runtime"], report["onnx"]) == ("churn@1", "onnx", "attached")
    assert report["folder"] == str(Path.cwd() / "build")
    manifest = _manifest(Path("build"))
    assert report["files"] == manifest["files"] and manifest["created_by"] == "eddie"
    human = remote_cli("package", "churn@latest", "-o", "build", "--force")
    assert human.exit_code == 0, human.output
    assert "packaged churn@1" in human.stdout and "serve.py" in human.stdout
    missing = remote_cli("package", "churn@9", "-o", "nothing")
    assert missing.exit_code == 2 and "churn" in missing.output
    assert not Path("nothing").exists()
    assert not (Path.cwd() / ".shipyard").exists()  # no local project was opened or made
