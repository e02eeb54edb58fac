"""What a model bundle installs: a shipyard wheel made from this installation, and pins.

``build_wheel`` writes ``shipyard-<version>-py3-none-any.whl`` straight from the installed
package: the files of the imported ``shipyard`` package (``__pycache__`` left out) and the
distribution's own ``METADATA`` and ``entry_points.txt``. No build back end, no network and
no source checkout are involved, so it works the same for a regular install and an editable
one (``pip install -e .``, where the files are the work tree's ``src/shipyard``). The zip is
deterministic: the same files give the same bytes, hence the same digest.

``lock`` pins every distribution the bundle needs to the version installed here, following
``Requires-Dist`` through the whole dependency tree (markers evaluated for this interpreter),
so the bundle installs what was tested, not whatever is newest.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import re
import zipfile
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

from shipyard.errors import MissingDependencyError, NotFoundError

__all__ = ["build_wheel", "lock"]

_DIST = "shipyard"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip holds: reproducible archives
_SKIP_PARTS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_wheel(dest: Path) -> Path:
    """Write a wheel of the installed shipyard into ``dest``.

    Args:
        dest: an existing folder.

    Returns:
        The wheel's path.

    Raises:
        NotFoundError: if shipyard is importable but not installed as a distribution (run
            ``pip install -e .`` in the checkout).
    """
    try:
        dist = importlib.metadata.distribution(_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise NotFoundError(
            "shipyard is not installed as a distribution, so it cannot be packaged: "
            "run `pip install -e .` (or `pip install .`) in the shipyard checkout"
        ) from None
    version = dist.version
    metadata = dist.read_text("METADATA")
    if metadata is None:
        raise NotFoundError(f"the installed shipyard {version} has no METADATA: reinstall it")
    package = Path(__file__).resolve().parents[1]  # the shipyard package this module is in
    info = f"{_DIST}-{version}.dist-info"
    entries: list[tuple[str, bytes]] = []
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if (
            not path.is_file()
            or _SKIP_PARTS.intersection(relative.parts)
            or path.suffix in _SKIP_SUFFIXES
        ):
            continue
        entries.append((f"{_DIST}/{relative.as_posix()}", path.read_bytes()))
    entries.append((f"{info}/METADATA", metadata.encode()))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        entries.append((f"{info}/entry_points.txt", entry_points.encode()))
    wheel = "Wheel-Version: 1.0\nGenerator: shipyard package\nRoot-Is-Purelib: true\n"
    entries.append((f"{info}/WHEEL", (wheel + "Tag: py3-none-any\n").encode()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    target = dest / f"{_DIST}-{version}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            item = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(item, data)
    target.write_bytes(buffer.getvalue())
    return target


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def lock(roots: Iterable[str], *, exclude: Sequence[str] = ()) -> list[str]:
    """Pin ``roots`` and everything they depend on to the versions installed here.

    Args:
        roots: requirement strings (``scikit-learn==1.9.1``, ``uvicorn[standard]``). A root
            pinned with ``==`` keeps its pin; the others get the installed version.
        exclude: distribution names left out (e.g. ``shipyard``, installed from its wheel).

    Returns:
        Sorted ``name==version`` lines (``name[extra]==version`` where extras were asked).
        A root that is not installed here is kept as written.

    Raises:
        MissingDependencyError: if ``packaging`` (installed with ``shipyard[ml]``) is missing.
    """
    try:
        from packaging.markers import default_environment
        from packaging.requirements import InvalidRequirement, Requirement
    except ModuleNotFoundError:
        raise MissingDependencyError("packaging", "ml") from None
    skip = {_normalise(n) for n in exclude}
    pins: dict[str, str] = {}
    extras: dict[str, set[str]] = {}
    written: dict[str, str] = {}
    environment: dict[str, str] = dict(default_environment())  # type: ignore[arg-type]
    # Breadth first: every root is seen before any dependency of the same name.
    queue = deque((Requirement(text), True) for text in roots)
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement, is_root = queue.popleft()
        name = _normalise(requirement.name)
        if name in skip:
            continue
        if (
            is_root
            and requirement.marker is not None
            and not requirement.marker.evaluate({**environment, "extra": ""})
        ):
            continue  # an optional extra's requirement, or one for another platform
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        extras.setdefault(name, set()).update(requirement.extras)
        exact = [s.version for s in requirement.specifier if s.operator == "=="]
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            if is_root:
                written.setdefault(name, str(requirement))
            continue
        if is_root and exact:
            pins[name] = exact[0]
        else:
            pins.setdefault(name, dist.version)
        for text in dist.requires or []:
            try:
                child = Requirement(text)
            except InvalidRequirement:  # a broken third-party METADATA line: not ours to fix
                continue
            wanted = {""} | set(requirement.extras)
            if child.marker is not None and not any(
                child.marker.evaluate({**environment, "extra": extra}) for extra in wanted
            ):
                continue
            queue.append((child, False))
    lines = []
    for name in sorted(pins.keys() | written.keys()):
        if name in pins:
            chosen = sorted(extras.get(name, set()))
            suffix = f"[{','.join(chosen)}]" if chosen else ""
            lines.append(f"{name}{suffix}=={pins[name]}")
        else:
            lines.append(written[name])
    return lines
