from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shipyard.app import Shipyard
from shipyard.services.autolog import EXPERIMENT, Autolog, enable_autolog
from shipyard.services.lightning_logger import ShipyardLogger

pytestmark = [
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)`:FutureWarning"),
]

EPOCHS = 3
Enable = Callable[..., Autolog]


class LitRegressor(pl.LightningModule):
    def __init__(self, n_in: int, hidden: int = 8, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])


@pytest.fixture(scope="module")
def loader() -> DataLoader[Any]:
    X, y = load_diabetes(return_X_y=True)
    target = ((y - y.mean()) / y.std()).reshape(-1, 1)
    dataset = TensorDataset(
        torch.tensor(X, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)
    )
    return DataLoader(dataset, batch_size=100)  # 442 rows: 5 steps an epoch


@pytest.fixture
def autolog(project: Shipyard) -> Iterator[Enable]:
    enabled: list[Autolog] = []

    def enable(**options: Any) -> Autolog:
        enabled.append(enable_autolog(project.runs, **options))
        return enabled[-1]

    original = pl.Trainer.fit
    yield enable
    for each in enabled:
        each.disable()
    assert pl.Trainer.fit is original, "disabling puts Trainer.fit back"


def _trainer(root: Path, **options: Any) -> pl.Trainer:
    settings: dict[str, Any] = {
        "max_epochs": EPOCHS,
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


def test_a_fit_in_a_run_logs_params_metrics_per_epoch_best_checkpoint_and_the_model(
    project: Shipyard, autolog: Enable, loader: DataLoader[Any], tmp_path: Path
) -> None:
    autolog()
    torch.manual_seed(0)
    model = LitRegressor(n_in=10, hidden=6)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", mode="min")
    trainer = _trainer(tmp_path, enable_checkpointing=True, callbacks=[checkpoint])
    with project.runs.start_run("lightning", capture=False) as run:
        trainer.fit(model, loader, val_dataloaders=loader)
    assert trainer.loggers == [], "the trainer keeps the loggers it had"
    recorded = project.runs.get(run.id)
    assert recorded.status == "finished"
    assert recorded.params == {"n_in": "10", "hidden": "6", "lr": "0.01"}
    history = project.runs.metrics.history(run.id, "train_loss_epoch")
    assert len(history) == EPOCHS
    assert len(project.runs.metrics.history(run.id, "val_loss")) == EPOCHS
    steps = project.runs.metrics.history(run.id, "train_loss_step")
    assert len(steps) == EPOCHS * 5 and list(steps.steps[:3]) == [0, 1, 2]
    assert history.values[-1] < history.values[0], "it learned"
    best = recorded.metrics["best_val_loss"].value
    assert best == pytest.approx(float(checkpoint.best_model_score))  # type: ignore[arg-type]
    assert recorded.tags["best_checkpoint"] == checkpoint.best_model_path
    version = project.registry.resolve("autolog-litregressor@latest")
    assert version.run_id == run.id and version.flavor == "lightning"
    assert version.onnx_status == "attached", version.onnx_reason
    X = loader.dataset.tensors[0][:20]  # type: ignore[attr-defined]
    model.eval()
    with torch.inference_mode():
        expected = model(X).numpy()
    loaded = project.models.load(version.ref)
    np.testing.assert_allclose(loaded.predict(X.numpy()), expected, atol=1e-6)


def test_a_fit_outside_a_run_gets_its_own_run(
    project: Shipyard, autolog: Enable, loader: DataLoader[Any], tmp_path: Path
) -> None:
    autolog(log_models=False)
    _trainer(tmp_path, max_epochs=2).fit(LitRegressor(n_in=10), loader)
    [run] = project.runs.search(EXPERIMENT)
    assert run.status == "finished" and run.name == "LitRegressor"
    assert run.params["n_in"] == "10"
    assert len(project.runs.metrics.history(run.id, "train_loss_epoch")) == 2
    from shipyard.errors import NotFoundError

    with pytest.raises(NotFoundError):
        project.registry.versions("autolog-litregressor")


def test_the_logger_works_explicitly_and_autolog_does_not_add_a_second(
    project: Shipyard, autolog: Enable, loader: DataLoader[Any], tmp_path: Path
) -> None:
    autolog(log_models=False)
    with project.runs.start_run("explicit", capture=False) as run:
        logger = ShipyardLogger(run)
        assert isinstance(logger, Logger) and logger.version == run.id
        trainer = _trainer(tmp_path, logger=logger)
        trainer.fit(LitRegressor(n_in=10, lr=0.02), loader)
    assert project.runs.get(run.id).params["lr"] == "0.02"
    assert len(project.runs.metrics.history(run.id, "train_loss_epoch")) == EPOCHS
    assert list(project.runs.search(EXPERIMENT)) == []


def test_a_failing_fit_ends_its_own_run_as_failed(
    project: Shipyard, autolog: Enable, loader: DataLoader[Any], tmp_path: Path
) -> None:
    class Broken(LitRegressor):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            raise ValueError("bad batch")

    autolog()
    with pytest.raises(ValueError, match="bad batch"):
        _trainer(tmp_path).fit(Broken(n_in=10), loader)
    [run] = project.runs.search(EXPERIMENT)
    assert run.status == "failed"


@pytest.mark.slow  # a fresh interpreter imports Lightning: about 5 s
def test_autolog_enabled_before_lightning_is_imported_wraps_it_on_import(
    tmp_path: Path,
) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from shipyard.app import build
        from shipyard.services.autolog_lightning import LightningAutolog
        from shipyard.settings import Settings

        root = {str(tmp_path)!r}
        project = build(Settings.load(root, env={{}}, metadata_uri=f"sqlite:///{{root}}/m.db"))
        autolog = LightningAutolog(project.runs, log_models=False, registered_model_name=None)
        autolog.enable()  # what enable_autolog does, without importing all of scikit-learn
        assert "lightning.pytorch" not in sys.modules
        import lightning.pytorch as pl
        print(hasattr(pl.Trainer.fit, "__wrapped__"))
        autolog.disable()
        print(hasattr(pl.Trainer.fit, "__wrapped__"))
        project.close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]
