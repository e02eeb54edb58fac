"""A PyTorch Lightning logger that records a ``Trainer`` into a shipyard run.

``Trainer(logger=ShipyardLogger(run))`` logs the hyperparameters as params, every metric
Lightning logs (per step and per epoch, batched through the run's metric buffer) and, when a
``ModelCheckpoint`` monitors a metric, the best checkpoint's score as ``best_<monitor>``
with its path as the tag ``best_checkpoint``; the best (and last) checkpoint files are stored
as run artifacts under ``checkpoints/``. ``sy.autolog()`` adds one to every
``Trainer.fit`` by itself. This module imports Lightning: load it only when it is needed.
"""

from __future__ import annotations

import warnings
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from shipyard.errors import ConflictError, ShipyardError
from shipyard.services.autolog import _param_value
from shipyard.services.runs import ActiveRun

__all__ = ["ShipyardLogger"]

SKIPPED_TAG = "lightning.skipped_params"  # params the run already held with other values
CHECKPOINT_DIR = "checkpoints"  # where a fit's checkpoint files go among the run's artifacts
CHECKPOINT_TAG = "best_checkpoint_artifact"  # the best checkpoint's artifact path


class ShipyardLogger(Logger):
    """Lightning ``Logger`` writing into a shipyard run.

    Args:
        run: the run to record into (it is not ended here: its owner ends it).
        max_params: log at most this many (flattened) hyperparameters.

    Example:
        >>> with project.runs.start_run("mnist") as run:  # doctest: +SKIP
        ...     Trainer(max_epochs=3, logger=ShipyardLogger(run)).fit(model, loader)
    """

    def __init__(self, run: ActiveRun, *, max_params: int = 100) -> None:
        super().__init__()
        self._run = run
        self._max_params = max_params
        self._checkpoint: Any = None

    @property
    @override
    def name(self) -> str:
        return "shipyard"

    @property
    @override
    def version(self) -> str:
        return self._run.id

    @property
    def experiment(self) -> ActiveRun:
        """The run this logger writes into."""
        return self._run

    @override
    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Log hyperparameters as params; nested ones as ``outer.inner``."""
        plain = vars(params) if isinstance(params, Namespace) else params
        flat = list(_flatten(plain).items())[: self._max_params]
        values = {key: _param_value(value) for key, value in flat}
        if not values:
            return
        try:
            self._run.log_params(values)
        except ConflictError:
            # An earlier fit in the same run logged some with other values: keep the rest.
            skipped = []
            for key, value in values.items():
                try:
                    self._run.log_param(key, value)
                except ConflictError:
                    skipped.append(key)
            self._run.set_tag(SKIPPED_TAG, ",".join(skipped))

    @override
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log one point of each metric at the trainer's global step."""
        values = {key: float(value) for key, value in metrics.items()}
        if values:
            self._run.log_metrics(values, step=step)

    @override
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Remember the checkpoint callback, to log its best score when training ends."""
        self._checkpoint = checkpoint_callback

    @override
    @rank_zero_only
    def save(self) -> None:
        """Commit buffered metric points."""
        self._run.flush()

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log the best checkpoint's score and path, and commit buffered points."""
        checkpoint = self._checkpoint
        score = getattr(checkpoint, "best_model_score", None)
        monitor = getattr(checkpoint, "monitor", None)
        if score is not None and monitor:
            self._run.log_metric(f"best_{monitor}", float(score))
            self._run.set_tag("best_checkpoint", str(checkpoint.best_model_path))
        self._log_checkpoints(checkpoint)
        self._run.flush()

    def _log_checkpoints(self, checkpoint: Any) -> None:
        """Store the best (and the last) checkpoint file as run artifacts under ``checkpoints/``.

        The files are content-addressed like every artifact: a checkpoint the project holds
        already costs nothing more. The tag ``best_checkpoint_artifact`` names the best one's
        artifact path; the local path stays in ``best_checkpoint``.
        """
        best = str(getattr(checkpoint, "best_model_path", "") or "")
        last = str(getattr(checkpoint, "last_model_path", "") or "")
        for kind, local in (("best", best), ("last", last)):
            path = Path(local) if local else None
            if path is None or not path.is_file() or (kind == "last" and local == best):
                continue
            try:
                [artifact] = self._run.log_artifact(path, CHECKPOINT_DIR)
            except (ShipyardError, OSError) as exc:
                # Training is done by now: a checkpoint that cannot be stored must not fail it.
                warnings.warn(
                    f"shipyard could not store the checkpoint {path} in run {self._run.id}: "
                    f"{exc}; it is still on disk",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            if kind == "best":
                self._run.set_tag(CHECKPOINT_TAG, artifact.path)


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
