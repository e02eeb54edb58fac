"""PyTorch modules: a state dict plus the class's source, or TorchScript.

The default keeps the weights as tensors only (safetensors when it is installed, else
``torch.save`` of the state dict, read back with ``weights_only=True``, so no pickled object
is ever rebuilt) and the source file of the module's class; loading imports the class from
that stored source, builds it with the stored constructor arguments and loads the weights.
Before anything is stored, the module is rebuilt that way once and must load the weights
strictly and compute what the original computes on the input example.

When the class cannot be rebuilt from its source (defined in ``__main__``, a notebook or a
function, constructor arguments unknown, or the rebuilt module disagrees), or the caller asks
with ``torchscript=True``, the module is stored as TorchScript instead: ``torch.jit.script``,
else ``torch.jit.trace`` on the input example.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import io
import json
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from typing_extensions import override

from shipyard.errors import (
    BackendError,
    InvalidArgumentError,
    MissingDependencyError,
    NotSupportedError,
)
from shipyard.services.flavors.base import Flavor, LoadedModel, pinned
from shipyard.services.flavors.tabular import as_frame, as_matrix

__all__ = ["META", "PytorchFlavor", "TorchModel"]

META = "torch_model.json"
WEIGHTS = "model.pt"  # torch.save of the state dict; tensors only, read with weights_only=True
SAFETENSORS = "model.safetensors"
SCRIPT = "model.torchscript.pt"
SOURCE = "source"
_REBUILD_TOLERANCE = 1e-6  # same weights, same code: only float noise may differ
_MODULE_PREFIX = "_shipyard_model_source_"


class TorchModel(LoadedModel):
    """A PyTorch module in eval mode; ``predict`` returns what its ``forward`` returns.

    Inputs become a float32 tensor (table columns in the order the input example had);
    outputs come back as numpy arrays: a tensor as an array, a tuple or dict of tensors as a
    tuple or dict of arrays. Nothing is added: a classifier returning logits returns logits.
    """

    flavor = "pytorch"

    def __init__(self, module: Any, columns: list[str] | None, flavor: str = "pytorch") -> None:
        self._module = module
        self._columns = columns
        self.flavor = flavor

    @override
    def predict(self, data: Any) -> Any:
        torch = import_torch()
        inputs = as_tensor(data, self._columns)
        return to_numpy(run_module(torch, self._module, inputs, "the input"))

    @property
    @override
    def native(self) -> Any:
        return self._module


class PytorchFlavor(Flavor):
    """Any ``torch.nn.Module`` (a ``ScriptModule`` is stored as TorchScript).

    Args:
        torchscript: store TorchScript even when the class could be rebuilt from its source.
        init_args: the keyword arguments the class's constructor needs to rebuild it (JSON
            values); without them the constructor must work with no arguments.
    """

    name = "pytorch"
    extra_packages: tuple[str, ...] = ()

    def __init__(
        self, *, torchscript: bool = False, init_args: Mapping[str, Any] | None = None
    ) -> None:
        if not isinstance(torchscript, bool):
            raise InvalidArgumentError(f"torchscript is True or False, not {torchscript!r}")
        if init_args is not None and not isinstance(init_args, Mapping):
            raise InvalidArgumentError("init_args is a dict of constructor keyword arguments")
        self.torchscript = torchscript
        self.init_args = dict(init_args) if init_args is not None else None

    @override
    def matches(self, model: Any) -> bool:
        # Compared by name so that detecting a flavor never imports torch.
        return any(
            c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module"
            for c in type(model).__mro__
        )

    @override
    def save(self, model: Any, folder: Path) -> None:
        self.save_with_example(model, folder, None)

    @override
    def save_with_example(self, model: Any, folder: Path, example: Any) -> None:
        torch = import_torch()
        if not isinstance(model, torch.nn.Module) or not self.matches(model):
            raise InvalidArgumentError(
                f"the {self.name} flavor stores {self._what()}, not a "
                f"{type(model).__module__}.{type(model).__name__}"
            )
        columns = _columns(example)
        inputs = as_tensor(example, columns) if example is not None else None
        training = model.training
        model.eval()
        try:
            if inputs is not None:
                run_module(torch, model, inputs, "the input example")
            reason: str | None
            if self.torchscript:
                reason = "asked for with torchscript=True"
            elif isinstance(model, torch.jit.ScriptModule):
                reason = "the module is TorchScript already"
            else:
                reason = self._save_source(torch, model, folder, inputs, columns)
            if reason is not None:
                self._save_script(torch, model, folder, inputs, columns, reason)
        finally:
            model.train(training)

    @override
    def load(self, folder: Path) -> LoadedModel:
        torch = import_torch()
        meta = json.loads((folder / META).read_text())
        if meta["format"] == "torchscript":
            with _quiet():
                module = torch.jit.load(str(folder / SCRIPT), map_location="cpu")
        else:
            cls = _import_class(folder, meta)
            weights = _read_weights(torch, folder)
            try:
                module = self.build(cls, meta["init_args"])
                module.load_state_dict(weights, strict=True)
            except Exception as exc:
                raise BackendError(
                    f"cannot rebuild {meta['class']} from its stored source and weights "
                    f"({type(exc).__name__}: {_first_line(exc)})"
                ) from None
        module.eval()
        return TorchModel(module, meta.get("columns"), self.name)

    @override
    def requirements(self, model: Any) -> list[str]:
        # A local version label (2.13.0+cpu) names a wheel index, not a release: pip's
        # torch==2.13.0 matches every build of that release.
        pins = pinned("torch", *self.extra_packages, "numpy", "pandas")
        return [p.split("+", 1)[0] for p in pins]

    @override
    def to_onnx(self, model: Any, example: Any) -> bytes:
        torch = import_torch()
        inputs = as_tensor(example, _columns(example))
        training = model.training
        model.eval()
        try:
            output = run_module(torch, model, inputs, "the input example")
            if not isinstance(output, torch.Tensor):
                raise NotSupportedError(
                    "the ONNX export of PyTorch modules", f"a {type(output).__name__} output"
                )
            buffer = io.BytesIO()
            try:
                with _quiet(), torch.no_grad():
                    # The TorchScript-based exporter: the torch.export-based default needs
                    # onnxscript, which the torch extra does not install.
                    torch.onnx.export(
                        model,
                        (inputs.to(_device_of(model)),),
                        buffer,
                        input_names=["input"],
                        output_names=["output"],
                        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                        dynamo=False,
                    )
            except Exception as exc:
                raise NotSupportedError(
                    f"torch.onnx for {type(model).__name__}", f"this model ({exc})"
                ) from None
        finally:
            model.train(training)
        return buffer.getvalue()

    # -- hooks for subclasses ------------------------------------------------------------------

    def constructor_args(self, model: Any) -> dict[str, Any]:
        """The keyword arguments that rebuild ``model``'s class; ``init_args`` by default."""
        return dict(self.init_args or {})

    def build(self, cls: type, args: Mapping[str, Any]) -> Any:
        """A new instance of ``cls`` made with ``args``."""
        return cls(**args)

    def _what(self) -> str:
        return "torch.nn.Module instances"

    # -- the two formats -----------------------------------------------------------------------

    def _save_source(
        self, torch: Any, model: Any, folder: Path, inputs: Any, columns: list[str] | None
    ) -> str | None:
        """Store state dict and source; or, without storing anything, why that cannot work."""
        cls = type(model)
        try:
            path, text = _source_of(cls)
        except _NoSource as exc:
            return str(exc)
        try:
            args = self.constructor_args(model)
            json.dumps(args)
        except (TypeError, ValueError) as exc:
            return f"its constructor arguments are not JSON values ({exc})"
        meta = {
            "format": "state_dict",
            "module": cls.__module__,
            "package": _package_of(cls),
            "class": cls.__qualname__,
            "source": f"{SOURCE}/{path.name}",
            "init_args": args,
            "columns": columns,
        }
        (folder / SOURCE).mkdir()
        (folder / SOURCE / path.name).write_text(text)
        (folder / META).write_text(json.dumps(meta, indent=2))
        _write_weights(torch, model, folder)
        problem = self._rebuild_problem(torch, model, folder, inputs)
        if problem is not None:
            for name in (META, WEIGHTS, SAFETENSORS, f"{SOURCE}/{path.name}"):
                (folder / name).unlink(missing_ok=True)
            (folder / SOURCE).rmdir()
        return problem

    def _rebuild_problem(self, torch: Any, model: Any, folder: Path, inputs: Any) -> str | None:
        try:
            rebuilt: Any = self.load(folder).native
        except Exception as exc:
            return f"rebuilding it from its stored source failed ({type(exc).__name__}: {exc})"
        if inputs is None:
            return None
        ours = to_numpy(run_module(torch, model, inputs, "the input example"))
        theirs = to_numpy(run_module(torch, rebuilt, inputs, "the input example"))
        try:
            diff = _max_diff(ours, theirs)
        except (TypeError, ValueError):
            diff = float("inf")
        if diff > _REBUILD_TOLERANCE:
            return (
                f"the module rebuilt from its source computes other outputs (difference {diff:.3g})"
            )
        return None

    def _save_script(
        self,
        torch: Any,
        model: Any,
        folder: Path,
        inputs: Any,
        columns: list[str] | None,
        reason: str,
    ) -> None:
        name = type(model).__name__
        scripted, problems = None, []
        if isinstance(model, torch.jit.ScriptModule):
            scripted = model
        else:
            try:
                with _quiet():
                    scripted = torch.jit.script(model)
            except Exception as exc:
                problems.append(f"torch.jit.script: {_first_line(exc)}")
            if scripted is None and inputs is None:
                problems.append("torch.jit.trace: no input example to trace with")
            elif scripted is None:
                try:
                    with _quiet(), torch.no_grad():
                        scripted = torch.jit.trace(model, inputs)
                except Exception as exc:
                    problems.append(f"torch.jit.trace: {_first_line(exc)}")
        if scripted is None:
            raise InvalidArgumentError(
                f"cannot store {name}: it cannot be rebuilt from its source ({reason}) and "
                f"TorchScript failed ({'; '.join(problems)}); define the class in an "
                "importable module (not __main__ or a notebook) with a constructor that "
                "works with no arguments or with init_args=..., or pass an input_example "
                "so that it can be traced"
            )
        with _quiet():
            torch.jit.save(scripted, str(folder / SCRIPT))
        meta = {
            "format": "torchscript",
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "reason": reason,
            "columns": columns,
        }
        (folder / META).write_text(json.dumps(meta, indent=2))


# -- inputs and outputs ------------------------------------------------------------------------


def import_torch() -> Any:
    """The ``torch`` module.

    Raises:
        MissingDependencyError: if PyTorch is not installed (``pip install 'shipyard[torch]'``).
    """
    try:
        import torch
    except ModuleNotFoundError:
        raise MissingDependencyError("torch", "torch") from None
    return torch


def as_tensor(data: Any, columns: list[str] | None) -> Any:
    """A float32 CPU tensor of the input; table columns picked in ``columns`` order."""
    torch = import_torch()
    if isinstance(data, torch.Tensor):
        return data.detach().to(device="cpu", dtype=torch.float32)
    module = type(data).__module__.split(".")[0]
    if columns is not None and module != "numpy":
        frame = as_frame(data)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InvalidArgumentError(
                f"the input lacks the column(s) {', '.join(missing)} the model was logged with"
            )
        data = frame[columns]
    return torch.tensor(as_matrix(data))  # a copy: pandas hands out read-only arrays


def run_module(torch: Any, module: Any, inputs: Any, what: str) -> Any:
    """``module(inputs)`` under ``torch.inference_mode``; a failure names the input's shape.

    Raises:
        InvalidArgumentError: if the module cannot run on the input.
    """
    try:
        with torch.inference_mode():
            return module(inputs.to(_device_of(module)))
    except Exception as exc:
        raise InvalidArgumentError(
            f"{type(module).__name__} cannot run on {what} of shape {tuple(inputs.shape)} "
            f"({_first_line(exc)}): pass rows shaped like the model's input"
        ) from None


def _device_of(module: Any) -> Any:
    """Where the module's weights are (a module trained on a GPU stays there)."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return "cpu"


def to_numpy(output: Any) -> Any:
    """Tensors as numpy arrays, also inside tuples, lists and dicts."""
    if hasattr(output, "detach") and hasattr(output, "numpy"):
        return output.detach().cpu().numpy()
    if isinstance(output, (tuple, list)):
        return tuple(to_numpy(o) for o in output)
    if isinstance(output, Mapping):
        return {k: to_numpy(v) for k, v in output.items()}
    return output


def _columns(example: Any) -> list[str] | None:
    if example is None:
        return None
    module = type(example).__module__.split(".")[0]
    if module in ("numpy", "torch"):
        return None
    return [str(c) for c in as_frame(example).columns]


def _max_diff(ours: Any, theirs: Any) -> float:
    if isinstance(ours, tuple):
        return max((_max_diff(a, b) for a, b in zip(ours, theirs, strict=True)), default=0.0)
    if isinstance(ours, dict):
        return max((_max_diff(ours[k], theirs[k]) for k in ours), default=0.0)
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b), initial=0.0))


# -- weights -----------------------------------------------------------------------------------


def _write_weights(torch: Any, model: Any, folder: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if importlib.util.find_spec("safetensors") is not None:
        safetensors = importlib.import_module("safetensors.torch")
        try:
            safetensors.save_file(state, str(folder / SAFETENSORS))
            return
        except (RuntimeError, ValueError):  # shared (tied) tensors: torch.save keeps them
            (folder / SAFETENSORS).unlink(missing_ok=True)
    torch.save(state, folder / WEIGHTS)


def _read_weights(torch: Any, folder: Path) -> Any:
    if (folder / SAFETENSORS).exists():
        try:
            safetensors = importlib.import_module("safetensors.torch")
        except ModuleNotFoundError:
            raise MissingDependencyError("safetensors", "torch") from None
        return safetensors.load_file(str(folder / SAFETENSORS), device="cpu")
    try:
        # weights_only: tensors and plain containers only; no pickled object is rebuilt.
        return torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackendError(
            f"refused to load the weights in {WEIGHTS}: they are not a plain state dict of "
            f"tensors ({_first_line(exc)}); log the model again from its training code"
        ) from None


# -- source ------------------------------------------------------------------------------------


class _NoSource(Exception):
    """Why a class cannot be rebuilt from its source file."""


def _source_of(cls: type) -> tuple[Path, str]:
    """The class's source file and its text.

    Raises:
        _NoSource: saying why there is none to use.
    """
    if cls.__module__ == "__main__":
        raise _NoSource("its class is defined in __main__ (a script or a notebook)")
    if "<locals>" in cls.__qualname__:
        raise _NoSource("its class is defined inside a function")
    if cls.__module__.split(".")[0] in ("torch", "lightning", "pytorch_lightning"):
        raise _NoSource(f"{cls.__module__}.{cls.__qualname__} is a library class")
    try:
        file = inspect.getsourcefile(cls)
    except (TypeError, OSError) as exc:
        raise _NoSource(f"its source cannot be read ({exc})") from None
    if file is None or not Path(file).is_file():
        raise _NoSource("its source file cannot be found")
    return Path(file), Path(file).read_text(encoding="utf-8")


def _package_of(cls: type) -> str:
    """The package relative imports in the class's module resolve against."""
    module = sys.modules.get(cls.__module__)
    package = getattr(module, "__package__", None)
    return package if isinstance(package, str) else cls.__module__.rpartition(".")[0]


def _import_class(folder: Path, meta: Mapping[str, Any]) -> type:
    path = folder / meta["source"]
    text = path.read_bytes()
    package = str(meta.get("package") or "")
    private = _MODULE_PREFIX + hashlib.sha256(text).hexdigest()[:16]
    # Under the original package, so that relative imports in the source still resolve.
    name = f"{package}.{private}" if package else private
    module: ModuleType | None = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise BackendError(f"cannot import the stored source {meta['source']}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise BackendError(
                f"cannot import the stored source of {meta['class']} "
                f"({type(exc).__name__}: {exc}); install what it imports"
            ) from None
    found: Any = module
    for part in str(meta["class"]).split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type):
        raise BackendError(f"the stored source does not define {meta['class']}")
    return found


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # torch 2.13 deprecates TorchScript and the TorchScript-based ONNX exporter; they are
    # still what works without extra packages, so their deprecation notices are not ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        yield


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
