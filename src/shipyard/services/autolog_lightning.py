"""Autolog for PyTorch Lightning: every ``Trainer.fit`` records into a run.

``enable_autolog`` (``sy.autolog()``) calls ``LightningAutolog.enable`` when Lightning is
installed. It wraps ``lightning.pytorch.Trainer.fit`` — at once when ``lightning.pytorch``
is imported already, else the moment it is imported, so that enabling autolog never pays for
importing Lightning. A wrapped fit adds a ``ShipyardLogger`` for the active run (or a run of
its own in experiment ``autolog``) and, with ``log_models``, logs the trained module. A
trainer that has a ``ShipyardLogger`` already is left alone. Recording never breaks a fit:
what fails is reported as a ``RuntimeWarning``.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from shipyard.services.autolog import EXPERIMENT
from shipyard.services.runs import ActiveRun, RunService

__all__ = ["LightningAutolog"]

_TARGET = "lightning.pytorch"
_EXAMPLE_ROWS = 5


class LightningAutolog:
    """Wraps ``Trainer.fit`` of ``lightning.pytorch`` until ``disable()``.

    Args:
        runs: the project's run service.
        log_models: log each trained module as a model version (flavor ``lightning``).
        registered_model_name: the model versions are logged under (default:
            ``autolog-<class name in lower case>``).
    """

    def __init__(
        self, runs: RunService, *, log_models: bool, registered_model_name: str | None
    ) -> None:
        self.runs = runs
        self.log_models = log_models
        self.registered_model_name = registered_model_name
        self.enabled = False
        self._trainer: Any = None
        self._original: Callable[..., Any] | None = None
        self._wrapper: Callable[..., Any] | None = None
        self._finder: _PatchOnImport | None = None

    @staticmethod
    def available() -> bool:
        """Whether Lightning is installed (checked without importing it)."""
        try:
            return importlib.util.find_spec("lightning") is not None
        except (ImportError, ValueError):
            return False

    def enable(self) -> None:
        """Wrap ``Trainer.fit`` now, or as soon as ``lightning.pytorch`` is imported."""
        self.enabled = True
        module = sys.modules.get(_TARGET)
        if module is not None:
            self._patch(module)
        else:
            self._finder = _PatchOnImport(self._patch)
            sys.meta_path.insert(0, self._finder)

    def disable(self) -> None:
        """Put the original ``Trainer.fit`` back; twice is a no-op."""
        self.enabled = False
        if self._finder is not None and self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        self._finder = None
        trainer = self._trainer
        # Someone who wrapped our wrapper since keeps theirs; ours then just calls through.
        if trainer is not None and vars(trainer).get("fit") is self._wrapper:
            trainer.fit = self._original
        self._trainer = self._original = self._wrapper = None

    def _patch(self, module: ModuleType) -> None:
        if not self.enabled or self._trainer is not None:
            return
        trainer = module.Trainer
        original = vars(trainer)["fit"]
        self._trainer, self._original = trainer, original
        self._wrapper = self._wrap(original)
        trainer.fit = self._wrapper

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def fit(trainer: Any, *args: Any, **kwargs: Any) -> Any:
            from shipyard.services.lightning_logger import ShipyardLogger

            if not self.enabled or any(isinstance(x, ShipyardLogger) for x in trainer.loggers):
                return original(trainer, *args, **kwargs)
            return self._record(original, trainer, args, kwargs)

        return fit

    def _record(
        self, original: Callable[..., Any], trainer: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        from shipyard.services.lightning_logger import ShipyardLogger

        problems: list[str] = []

        def attempt(what: str, action: Callable[[], Any]) -> Any:
            try:
                return action()
            except Exception as exc:
                problems.append(f"{what} ({type(exc).__name__}: {exc})")
                return None

        model = args[0] if args else kwargs.get("model")
        run: ActiveRun | None = self.runs.active_run()
        owned: ActiveRun | None = None
        if run is None:
            name = type(model).__name__
            owned = run = attempt("start a run", lambda: self.runs.start_run(EXPERIMENT, name=name))
        if run is None:
            _warn(problems)
            return original(trainer, *args, **kwargs)
        previous = list(trainer.loggers)
        trainer.loggers = [*previous, ShipyardLogger(run)]
        try:
            result = original(trainer, *args, **kwargs)
        except BaseException as exc:
            trainer.loggers = previous
            if owned is not None:
                status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
                attempt("end the run", lambda: owned.end(status))
            _warn(problems, failing=exc)
            raise
        trainer.loggers = previous
        if self.log_models and model is not None:
            active = run
            attempt("log the model", lambda: self._log_model(active, trainer, model))
        if owned is not None:
            attempt("end the run", lambda: owned.end("finished"))
        _warn(problems)
        return result

    def _log_model(self, run: ActiveRun, trainer: Any, model: Any) -> None:
        name = self.registered_model_name or f"autolog-{type(model).__name__.lower()}"
        run.log_model(model, name, input_example=_example(trainer))


def _example(trainer: Any) -> Any:
    """The first rows of the first training batch's inputs, as numpy, or None."""
    loader = trainer.train_dataloader
    if loader is None:
        return None
    try:
        batch = next(iter(loader))
    except (StopIteration, TypeError):
        return None
    inputs = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    if hasattr(inputs, "detach"):
        return inputs[:_EXAMPLE_ROWS].detach().cpu().numpy()
    return None


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds ``lightning.pytorch`` like the path finder would and patches it once loaded."""

    def __init__(self, then: Callable[[ModuleType], None]) -> None:
        self._then = then

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = spec.loader if spec is not None else None
        if spec is None or not isinstance(loader, importlib.abc.Loader):
            return None
        execute = loader.exec_module
        then = self._then

        def exec_module(module: ModuleType) -> None:
            execute(module)
            then(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        return spec


def _warn(problems: list[str], *, failing: BaseException | None = None) -> None:
    for problem in problems:
        message = f"shipyard autolog could not {problem} for Trainer.fit; training is not affected"
        try:
            warnings.warn(message, RuntimeWarning, stacklevel=4)
        except Warning:
            # Warnings are errors here; the fit's own exception is the one to see.
            if failing is None:
                raise
            failing.add_note(message)
