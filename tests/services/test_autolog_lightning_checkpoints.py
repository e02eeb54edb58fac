"""Lightning autolog keeps a fit's checkpoint files as run artifacts, not only their path."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shipyard.app import Shipyard
from shipyard.services.autolog import Autolog, enable_autolog
from shipyard.services.lightning_logger import CHECKPOINT_DIR, CHECKPOINT_TAG
from shipyard.stores.artifacts.content import hash_file

pytestmark = [
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)`:FutureWarning"),
]


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture
def loader() -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
    return DataLoader(TensorDataset(x, y), batch_size=16)


@pytest.fixture
def autolog(project: Shipyard) -> Iterator[Autolog]:
    enabled = enable_autolog(project.runs, log_models=False)
    yield enabled
    enabled.disable()


def _trainer(root: Path, **options: Any) -> pl.Trainer:
    settings: dict[str, Any] = {
        "max_epochs": 3,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "accelerator": "cpu",
        "devices": 1,
        "log_every_n_steps": 1,
        "default_root_dir": str(root),
    }
    return pl.Trainer(**(settings | options))


def test_the_best_and_last_checkpoints_are_stored_as_run_artifacts_byte_for_byte(
    project: Shipyard, autolog: Autolog, loader: DataLoader[Any], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = Tiny()
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="val_loss", mode="min", save_last=True
    )
    trainer = _trainer(tmp_path, enable_checkpointing=True, callbacks=[checkpoint])
    with project.runs.start_run("lightning", capture=False) as run:
        trainer.fit(model, loader, val_dataloaders=loader)

    best, last = Path(checkpoint.best_model_path), Path(checkpoint.last_model_path)
    assert best.is_file() and last.name == "last.ckpt" and best != last
    recorded = project.runs.get(run.id)
    assert recorded.tags["best_checkpoint"] == str(best), "the local path is still tagged"
    best_path = f"{CHECKPOINT_DIR}/{best.name}"
    assert recorded.tags[CHECKPOINT_TAG] == best_path
    listed = {a.path: a for a in project.runs.artifacts(run.id)}
    assert sorted(listed) == sorted([best_path, f"{CHECKPOINT_DIR}/last.ckpt"])
    # Content-addressed: the recorded digest is the file's own.
    assert (listed[best_path].digest, listed[best_path].size) == hash_file(best)
    best_bytes, last_bytes = best.read_bytes(), last.read_bytes()

    # The run's copy outlives the local files and loads as the checkpoint it was.
    shutil.rmtree(tmp_path / "ckpt")
    stored = project.runs.read_artifact(run.id, best_path)
    assert stored == best_bytes
    assert project.runs.read_artifact(run.id, f"{CHECKPOINT_DIR}/last.ckpt") == last_bytes
    state = torch.load(io.BytesIO(stored), map_location="cpu", weights_only=False)
    assert set(state["state_dict"]) == set(model.state_dict())
    assert float(state["callbacks"][next(iter(state["callbacks"]))]["best_model_score"]) == (
        pytest.approx(recorded.metrics["best_val_loss"].value)
    )


def test_a_fit_without_checkpoints_stores_no_checkpoint_artifacts(
    project: Shipyard, autolog: Autolog, loader: DataLoader[Any], tmp_path: Path
) -> None:
    with project.runs.start_run("lightning", capture=False) as run:
        _trainer(tmp_path, max_epochs=1).fit(Tiny(), loader)
    recorded = project.runs.get(run.id)
    assert project.runs.artifacts(run.id) == []
    assert CHECKPOINT_TAG not in recorded.tags and "best_checkpoint" not in recorded.tags
    assert "train_loss" in recorded.metrics, "the fit was recorded"
