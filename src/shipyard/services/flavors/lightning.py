"""PyTorch Lightning modules: stored like PyTorch modules, rebuilt from their hyperparameters.

A ``LightningModule`` is a ``torch.nn.Module``, so it is stored the way the ``pytorch``
flavor stores one (state dict plus class source, or TorchScript). The constructor arguments
are the module's ``hparams`` (what ``save_hyperparameters()`` recorded), so a module whose
constructor needs arguments is rebuilt with the values it was trained with. With
``checkpoint=PATH`` the weights and hyperparameters come from a Lightning checkpoint instead
of the object passed (which may then be the LightningModule class itself).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from typing_extensions import override

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.services.flavors.pytorch import PytorchFlavor

__all__ = ["LightningFlavor"]

_MODULES = ("lightning.pytorch.core.module", "pytorch_lightning.core.module")


class LightningFlavor(PytorchFlavor):
    """Any ``lightning.pytorch.LightningModule``.

    Args:
        torchscript: store TorchScript even when the class could be rebuilt from its source.
        init_args: constructor keyword arguments (default: the module's ``hparams``).
        checkpoint: a Lightning checkpoint (``.ckpt``) to take the weights and
            hyperparameters from; the model passed to ``log_model`` is then the module's
            class or an instance of it. The checkpoint is unpickled: pass only your own.
    """

    name = "lightning"
    extra_packages = ("lightning",)

    def __init__(
        self,
        *,
        torchscript: bool = False,
        init_args: Mapping[str, Any] | None = None,
        checkpoint: str | Path | None = None,
    ) -> None:
        super().__init__(torchscript=torchscript, init_args=init_args)
        if checkpoint is not None and not isinstance(checkpoint, (str, Path)):
            raise InvalidArgumentError(f"checkpoint is a file path, not {checkpoint!r}")
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self._restored: Any = None

    @override
    def matches(self, model: Any) -> bool:
        return any(
            c.__name__ == "LightningModule" and c.__module__ in _MODULES
            for c in type(model).__mro__
        )

    @override
    def save_with_example(self, model: Any, folder: Path, example: Any) -> None:
        if self.checkpoint is not None:
            model = self._restored = self._from_checkpoint(model)
        super().save_with_example(model, folder, example)

    @override
    def to_onnx(self, model: Any, example: Any) -> bytes:
        return super().to_onnx(self._restored if self._restored is not None else model, example)

    @override
    def constructor_args(self, model: Any) -> dict[str, Any]:
        if self.init_args is not None:
            return dict(self.init_args)
        args: dict[str, Any] = _plain(dict(getattr(model, "hparams", {}) or {}))
        return args

    @override
    def build(self, cls: type, args: Mapping[str, Any]) -> Any:
        # Like Lightning's load_from_checkpoint: hparams the constructor does not name are
        # dropped unless it takes **kwargs (save_hyperparameters can record extra keys).
        parameters = inspect.signature(cls).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            names = {p.name for p in parameters}
            args = {k: v for k, v in args.items() if k in names}
        return cls(**args)

    @override
    def _what(self) -> str:
        return "lightning.pytorch.LightningModule instances"

    def _from_checkpoint(self, model: Any) -> Any:
        assert self.checkpoint is not None
        cls = model if isinstance(model, type) else type(model)
        if not any(c.__name__ == "LightningModule" for c in cls.__mro__):
            raise InvalidArgumentError(
                f"with checkpoint=..., pass the LightningModule class (or an instance), "
                f"not a {cls.__module__}.{cls.__name__}"
            )
        if not self.checkpoint.is_file():
            raise NotFoundError(f"checkpoint {self.checkpoint} does not exist")
        try:
            return cls.load_from_checkpoint(  # type: ignore[attr-defined]
                str(self.checkpoint), map_location="cpu", weights_only=False
            )
        except Exception as exc:
            raise InvalidArgumentError(
                f"cannot load {cls.__name__} from {self.checkpoint}: {exc}"
            ) from None


def _plain(value: Any) -> Any:
    """Hyperparameters as plain dicts and lists (Lightning keeps AttributeDicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
