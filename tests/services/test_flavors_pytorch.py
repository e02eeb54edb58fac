from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import json
import pickle
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes
from sqlalchemy import select
from torch import nn

from shipyard.app import Shipyard
from shipyard.errors import (
    BackendError,
    CorruptBlobError,
    InvalidArgumentError,
    MissingDependencyError,
    NotFoundError,
)
from shipyard.services.flavors.pytorch import META, PytorchFlavor
from shipyard.stores.metadata.schema import objects

# The weights file: safetensors when it is installed, else torch.save of the state dict.
WEIGHTS = "model.safetensors" if importlib.util.find_spec("safetensors") else "model.pt"


class MLP(nn.Module):
    """Two layers; its constructor works without arguments."""

    def __init__(self, n_in: int = 30, hidden: int = 16, n_out: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class Regressor(nn.Module):
    """Needs its input width: rebuilt only with init_args."""

    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_in, 8)
        self.out = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x)))  # type: ignore[no-any-return]


def _train(model: nn.Module, X: np.ndarray, y: np.ndarray, loss: nn.Module, steps: int) -> None:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs, targets = torch.tensor(X), torch.tensor(y)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss(model(inputs), targets).backward()
        optimizer.step()


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, MLP]:
    data = load_breast_cancer(as_frame=True)
    X = (data.data - data.data.mean()) / data.data.std()
    torch.manual_seed(0)
    model = MLP()
    _train(model, X.to_numpy(np.float32), data.target.to_numpy(), nn.CrossEntropyLoss(), 40)
    return X, model


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, Regressor]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    torch.manual_seed(0)
    model = Regressor(n_in=10)
    target = ((y - y.mean()) / y.std()).to_numpy(np.float32).reshape(-1, 1)
    _train(model, X.to_numpy(np.float32), target, nn.MSELoss(), 40)
    return X, model


def _expected(model: nn.Module, X: pd.DataFrame) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return model(torch.tensor(X.to_numpy(np.float32))).numpy()  # type: ignore[no-any-return]


def _meta(project: Shipyard, reference: str) -> dict[str, Any]:
    folder = project.models.path(project.registry.resolve(reference))
    return json.loads((folder / META).read_text())  # type: ignore[no-any-return]


def test_a_module_is_stored_as_weights_and_source_and_predicts_like_the_original(
    project: Shipyard, cancer: tuple[pd.DataFrame, MLP]
) -> None:
    X, model = cancer
    model.train()
    with project.runs.start_run("torch", capture=False) as run:
        version = run.log_model(model, "cancer-mlp", input_example=X[:5], training_sample=X)
    assert model.training, "logging leaves the module in the mode it was in"
    assert version.flavor == "pytorch" and version.run_id == run.id
    assert f"torch=={torch.__version__.split('+')[0]}" in version.requirements
    assert any(r.startswith("numpy==") for r in version.requirements)
    files = {f["path"] for f in project.models.files(version)}
    assert {META, WEIGHTS, f"source/{Path(__file__).name}", "model.onnx"} <= files
    meta = _meta(project, "cancer-mlp@1")
    assert meta["format"] == "state_dict" and meta["class"] == "MLP"
    assert meta["init_args"] == {} and meta["columns"] == list(X.columns)
    loaded = project.models.load("cancer-mlp@1")
    expected = _expected(model, X)
    np.testing.assert_allclose(loaded.predict(X), expected, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(X.to_numpy()), expected, atol=1e-6)
    shuffled = X[list(reversed(X.columns))]
    np.testing.assert_allclose(loaded.predict(shuffled[:7]), expected[:7], atol=1e-6)
    assert type(loaded.native).__name__ == "MLP" and not loaded.native.training


def test_the_onnx_export_is_attached_after_the_parity_check(
    project: Shipyard, cancer: tuple[pd.DataFrame, MLP]
) -> None:
    X, model = cancer
    version = project.models.log_model(model, "cancer-mlp", input_example=X[:5], training_sample=X)
    assert version.onnx_status == "attached"
    assert version.onnx_max_diff is not None and version.onnx_max_diff < 1e-4
    onnx = project.models.load("cancer-mlp@1", runtime="onnx")
    # The batch axis is dynamic: any number of rows, not just the example's 5.
    np.testing.assert_allclose(onnx.predict(X[:123]), _expected(model, X[:123]), atol=1e-4)


def test_a_constructor_that_needs_arguments_is_rebuilt_from_init_args(
    project: Shipyard, diabetes: tuple[pd.DataFrame, Regressor]
) -> None:
    X, model = diabetes
    version = project.models.log_model(
        model, "diabetes", input_example=X[:5], init_args={"n_in": 10}
    )
    assert _meta(project, version.ref)["init_args"] == {"n_in": 10}
    loaded = project.models.load("diabetes@1")
    np.testing.assert_allclose(loaded.predict(X), _expected(model, X), atol=1e-6)
    assert loaded.predict(X[:3]).shape == (3, 1), "the module's output as it is"
    # Without them the class cannot be rebuilt, so it is stored as TorchScript.
    fallback = project.models.log_model(model, "diabetes", input_example=X[:5])
    meta = _meta(project, fallback.ref)
    assert meta["format"] == "torchscript"
    assert "n_in" in meta["reason"]
    np.testing.assert_allclose(
        project.models.load(fallback.ref).predict(X[:20]), _expected(model, X[:20]), atol=1e-6
    )


def test_a_class_without_capturable_source_falls_back_to_torchscript(
    project: Shipyard, cancer: tuple[pd.DataFrame, MLP]
) -> None:
    X, _ = cancer

    class Local(nn.Module):  # defined in a function: its source cannot rebuild it
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(30, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x).relu()  # type: ignore[no-any-return]

    Notebook = type(  # what a class typed into a notebook looks like: module __main__
        "Notebook", (nn.Module,), {"__module__": "__main__", "forward": _varargs_forward}
    )
    torch.manual_seed(1)
    local = Local()
    notebook = Notebook()
    notebook.linear = nn.Linear(30, 2)
    version = project.models.log_model(local, "local", input_example=X[:5])
    traced = project.models.log_model(notebook, "notebook", input_example=X[:5])
    assert _meta(project, version.ref)["format"] == "torchscript"
    assert "inside a function" in _meta(project, version.ref)["reason"]
    assert "__main__" in _meta(project, traced.ref)["reason"]
    assert version.onnx_status == "attached" and traced.onnx_status == "attached"
    for reference, module in (("local@1", local), ("notebook@1", notebook)):
        np.testing.assert_allclose(
            project.models.load(reference).predict(X), _expected(module, X), atol=1e-6
        )


def _varargs_forward(self: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    # *args: torch.jit.script refuses it, torch.jit.trace handles it
    return self.linear(inputs[0])  # type: ignore[operator,no-any-return]


def test_the_stored_source_is_loaded_and_relative_imports_still_resolve(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = f"torchpkg_{tmp_path.name.replace('-', '_').replace('[', '_').replace(']', '_')}"
    root = tmp_path / "code" / package
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "layers.py").write_text(
        "from torch import nn\n\n\ndef block(n_in, n_out):\n    return nn.Linear(n_in, n_out)\n"
    )
    source = (
        "from torch import nn\n\nfrom .layers import block\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, width=4):\n"
        "        super().__init__()\n"
        "        self.layer = block(3, width)\n\n"
        "    def forward(self, x):\n"
        "        return self.layer(x) * 2\n"
    )
    (root / "net.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    net = importlib.import_module(f"{package}.net").Net(width=5)
    example = np.ones((2, 3), dtype=np.float32)
    version = project.models.log_model(
        net, "pkg-net", input_example=example, init_args={"width": 5}
    )
    meta = _meta(project, version.ref)
    assert meta["format"] == "state_dict" and meta["package"] == package
    # The file changes after logging: the version keeps the code it was logged with.
    (root / "net.py").write_text(source.replace("* 2", "* 3"))
    loaded = project.models.load("pkg-net@1")
    with torch.inference_mode():
        expected = net(torch.ones(2, 3)).numpy()
    np.testing.assert_allclose(loaded.predict(example), expected, atol=1e-6)
    assert type(loaded.native).__module__.startswith(f"{package}._shipyard_model_source_")


def test_torchscript_is_used_when_asked(
    project: Shipyard, cancer: tuple[pd.DataFrame, MLP]
) -> None:
    X, model = cancer
    version = project.models.log_model(model, "scripted", input_example=X[:5], torchscript=True)
    files = {f["path"] for f in project.models.files(version)}
    assert "model.torchscript.pt" in files and WEIGHTS not in files
    assert _meta(project, version.ref)["reason"] == "asked for with torchscript=True"
    np.testing.assert_allclose(
        project.models.load(version.ref).predict(X), _expected(model, X), atol=1e-6
    )


def test_a_module_that_can_neither_be_rebuilt_nor_scripted_is_refused(project: Shipyard) -> None:
    Notebook = type(
        "Notebook", (nn.Module,), {"__module__": "__main__", "forward": _varargs_forward}
    )
    notebook = Notebook()
    notebook.linear = nn.Linear(3, 1)
    with pytest.raises(InvalidArgumentError) as caught:
        project.models.log_model(notebook, "nothing")  # no example: nothing to trace with
    message = str(caught.value)
    assert "cannot store Notebook" in message and "torch.jit.script" in message
    assert "define the class in an importable module" in message
    assert "pass an input_example" in message
    with pytest.raises(NotFoundError):
        project.registry.versions("nothing")


def test_bad_models_options_and_inputs_get_clear_errors(
    project: Shipyard, cancer: tuple[pd.DataFrame, MLP]
) -> None:
    X, model = cancer
    with pytest.raises(InvalidArgumentError, match=r"stores torch\.nn\.Module instances"):
        project.models.log_model({"weights": [1.0]}, "bad", flavor="pytorch")
    with pytest.raises(InvalidArgumentError, match=r"no flavor saves a builtins\.dict"):
        project.models.log_model({"weights": [1.0]}, "bad")
    with pytest.raises(InvalidArgumentError, match=r"shape \(5, 10\).*5x10 and 30x16"):
        project.models.log_model(model, "bad", input_example=X.iloc[:5, :10].to_numpy())
    with pytest.raises(InvalidArgumentError, match="does not take the option"):
        project.models.log_model(model, "bad", torchscirpt=True)
    with pytest.raises(NotFoundError):
        project.registry.versions("bad")
    project.models.log_model(model, "good", input_example=X[:5], onnx=False)
    loaded = project.models.load("good@1")
    with pytest.raises(InvalidArgumentError, match=r"shape \(2, 4\)"):
        loaded.predict(np.ones((2, 4)))
    with pytest.raises(InvalidArgumentError, match="lacks the column"):
        loaded.predict(X.drop(columns=X.columns[0])[:2])


def test_a_tampered_weights_blob_is_refused(
    project: Shipyard, cancer: tuple[pd.DataFrame, MLP]
) -> None:
    X, model = cancer
    version = project.models.log_model(model, "tampered", input_example=X[:5], onnx=False)
    weights = next(f for f in project.models.files(version) if f["path"] == WEIGHTS)
    with project.metadata.read() as conn:
        row = conn.execute(
            select(objects.c.blob, objects.c.offset).where(objects.c.digest == weights["digest"])
        ).one()
    blob = project.content.blobs.root.joinpath(  # type: ignore[attr-defined]
        *project.content.key_of(row.blob).split("/")
    )
    data = bytearray(blob.read_bytes())
    data[(row.offset or 0) + weights["size"] // 2] ^= 0xFF  # one byte inside the weights
    blob.write_bytes(bytes(data))
    with pytest.raises(CorruptBlobError):
        project.models.load("tampered@1")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.write_text, (self.marker, "pwned"))


def test_weights_that_are_not_plain_tensors_are_never_unpickled(
    tmp_path: Path, cancer: tuple[pd.DataFrame, MLP]
) -> None:
    X, model = cancer
    flavor = PytorchFlavor()
    flavor.save_with_example(model, tmp_path, X[:5])
    assert json.loads((tmp_path / META).read_text())["format"] == "state_dict"
    marker = tmp_path / "marker"
    (tmp_path / "model.safetensors").unlink(missing_ok=True)
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"net.0.weight": _Payload(marker)}))
    with pytest.raises(BackendError, match="refused to load the weights"):
        flavor.load(tmp_path)
    assert not marker.exists()


class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        if fullname == "torch" or fullname.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


def test_loading_without_torch_names_the_extra_to_install(
    project: Shipyard, cancer: tuple[pd.DataFrame, MLP], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, model = cancer
    project.models.log_model(model, "no-torch", input_example=X[:5], onnx=False)
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(sys, "meta_path", [_NoTorch(), *sys.meta_path])
    with pytest.raises(MissingDependencyError, match=r"pip install 'shipyard\[torch\]'"):
        project.models.load("no-torch@1")


def test_detecting_flavors_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from shipyard.services.flavors import flavor_for\n"
        "from shipyard.services.flavors.python import PythonModel\n"
        "class M(PythonModel):\n"
        "    def predict(self, context, model_input): return model_input\n"
        "assert flavor_for(M()).name == 'python'\n"
        "print('torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False"]
