from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shipyard.app import Shipyard
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.services.flavors.pytorch import META

# Lightning's advice about data-loader workers on a 2-core test machine, and the torch 2.13
# deprecation Lightning 2.6 itself triggers, are not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)`:FutureWarning"),
]


class LitMLP(pl.LightningModule):
    """A classifier whose constructor needs its sizes: rebuilt from hparams."""

    def __init__(self, n_in: int, hidden: int, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss  # type: ignore[no-any-return]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", self.loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, DataLoader[Any]]:
    data = load_breast_cancer(as_frame=True)
    X = (data.data - data.data.mean()) / data.data.std()
    dataset = TensorDataset(
        torch.tensor(X.to_numpy(np.float32)), torch.tensor(data.target.to_numpy())
    )
    return X, DataLoader(dataset, batch_size=128)


def _trainer(root: Path, **options: Any) -> pl.Trainer:
    settings: dict[str, Any] = {
        "max_epochs": 3,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "accelerator": "cpu",
        "devices": 1,
        "default_root_dir": str(root),
    }
    return pl.Trainer(**(settings | options))


def _expected(model: nn.Module, X: pd.DataFrame) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return model(torch.tensor(X.to_numpy(np.float32))).numpy()  # type: ignore[no-any-return]


def test_a_lightning_module_is_rebuilt_from_its_hparams(
    project: Shipyard, cancer: tuple[pd.DataFrame, DataLoader[Any]], tmp_path: Path
) -> None:
    X, loader = cancer
    torch.manual_seed(0)
    model = LitMLP(n_in=30, hidden=12, lr=0.02)
    _trainer(tmp_path).fit(model, loader)
    with project.runs.start_run("lightning", capture=False) as run:
        version = run.log_model(model, "lit", input_example=X[:5], training_sample=X)
    assert version.flavor == "lightning" and version.run_id == run.id
    requirements = set(version.requirements)
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements
    assert f"lightning=={importlib.metadata.version('lightning')}" in requirements
    folder = project.models.path(version)
    meta = json.loads((folder / META).read_text())
    assert meta["format"] == "state_dict" and meta["class"] == "LitMLP"
    assert meta["init_args"] == {"n_in": 30, "hidden": 12, "lr": 0.02}
    loaded = project.models.load("lit@1")
    assert loaded.flavor == "lightning" and loaded.native.hparams.hidden == 12
    np.testing.assert_allclose(loaded.predict(X), _expected(model, X), atol=1e-6)
    assert version.onnx_status == "attached"
    assert version.onnx_max_diff is not None and version.onnx_max_diff < 1e-4
    onnx = project.models.load("lit@1", runtime="onnx")
    np.testing.assert_allclose(onnx.predict(X[:50]), _expected(model, X[:50]), atol=1e-4)


def test_a_lightning_checkpoint_is_logged_from_its_path(
    project: Shipyard, cancer: tuple[pd.DataFrame, DataLoader[Any]], tmp_path: Path
) -> None:
    X, loader = cancer
    torch.manual_seed(0)
    model = LitMLP(n_in=30, hidden=8)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", mode="min")
    trainer = _trainer(tmp_path, enable_checkpointing=True, callbacks=[checkpoints])
    trainer.fit(model, loader, val_dataloaders=loader)
    best = Path(checkpoints.best_model_path)
    assert best.is_file()
    version = project.models.log_model(
        LitMLP, "from-ckpt", flavor="lightning", checkpoint=best, input_example=X[:5]
    )
    restored = LitMLP.load_from_checkpoint(best, map_location="cpu", weights_only=False)
    np.testing.assert_allclose(
        project.models.load(version.ref).predict(X), _expected(restored, X), atol=1e-6
    )
    assert version.onnx_status == "attached"


def test_bad_lightning_inputs_get_clear_errors(
    project: Shipyard, cancer: tuple[pd.DataFrame, DataLoader[Any]], tmp_path: Path
) -> None:
    X, _ = cancer
    with pytest.raises(NotFoundError, match="does not exist"):
        project.models.log_model(
            LitMLP, "bad", flavor="lightning", checkpoint=tmp_path / "missing.ckpt"
        )
    with pytest.raises(InvalidArgumentError, match="pass the LightningModule class"):
        project.models.log_model(dict, "bad", flavor="lightning", checkpoint=tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"LightningModule instances, not a"):
        project.models.log_model(nn.Linear(3, 1), "bad", flavor="lightning")
    with pytest.raises(InvalidArgumentError, match=r"shape \(5, 3\)"):
        project.models.log_model(LitMLP(30, 4), "bad", input_example=X.iloc[:5, :3])
    with pytest.raises(NotFoundError):
        project.registry.versions("bad")
