"""Load a pipeline from a target: ``"path/to/file.py:name"`` or ``"package.module:name"``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from shipyard.errors import InvalidArgumentError, PipelineNotFoundError
from shipyard.services.pipeline_tasks import Pipeline

__all__ = ["load_pipeline", "resolve_target"]


def resolve_target(target: str, root: Path) -> str:
    """A target whose file path is relative, made absolute against ``root``.

    Schedules keep targets as written (``flows/train.py:flow``), relative to the project, so
    that a scheduler started from any folder (``shipyard -C project scheduler``) finds them.
    Module targets and absolute paths are returned unchanged.
    """
    location, sep, name = target.rpartition(":")
    if not sep or not (location.endswith(".py") or "/" in location or "\\" in location):
        return target
    path = Path(location)
    return target if path.is_absolute() else f"{root / path}:{name}"


def load_pipeline(target: str) -> Pipeline:
    """The ``Pipeline`` a target names; a file is executed as a fresh module each time.

    Args:
        target: ``"path/to/file.py:flow"`` or ``"package.module:flow"``.

    Raises:
        InvalidArgumentError: for a target without ``:name``, or a file with a syntax
            error (the message names the file and line).
        PipelineNotFoundError: when the file, module or name does not exist, or the name
            is not a pipeline.
    """
    location, sep, name = target.rpartition(":")
    if not sep or not location or not name:
        raise InvalidArgumentError(
            f"pipeline target {target!r} must look like path/to/file.py:flow or package.module:flow"
        )
    is_file = location.endswith(".py") or "/" in location or "\\" in location
    if is_file:
        module = _load_file(target, Path(location))
    else:
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as exc:
            raise PipelineNotFoundError(target, f"no module named {exc.name!r}") from None
        except SyntaxError as exc:
            raise _syntax(exc) from None
    found = getattr(module, name, None)
    if found is None:
        raise PipelineNotFoundError(target, f"{location} has no attribute {name!r}")
    if not isinstance(found, Pipeline):
        raise PipelineNotFoundError(
            target, f"{name!r} is a {type(found).__name__}, not a @pipeline function"
        )
    # Stored on runs for the scheduler and resume: a file by its absolute path, so that
    # it loads again from any working directory.
    found.target = str(Path(location).resolve()) + f":{name}" if is_file else target
    return found


def _load_file(target: str, path: Path) -> object:
    if not path.is_file():
        raise PipelineNotFoundError(target, f"file {path} does not exist")
    resolved = path.resolve()
    module_name = "_shipyard_target_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise PipelineNotFoundError(target, f"{path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # The folder of the file is importable from it, as when it is run as a script.
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise _syntax(exc) from None
    except Exception as exc:
        del sys.modules[module_name]
        raise PipelineNotFoundError(
            target, f"importing {path} raised {type(exc).__name__}: {exc}"
        ) from None
    import cloudpickle

    # Functions of a file loaded by path go to task processes by value: the child
    # cannot import a module named after a hash.
    cloudpickle.register_pickle_by_value(module)
    return module


def _syntax(exc: SyntaxError) -> InvalidArgumentError:
    where = f"{exc.filename}, line {exc.lineno}" if exc.filename else f"line {exc.lineno}"
    return InvalidArgumentError(f"syntax error in {where}: {exc.msg}; fix the file and run again")
