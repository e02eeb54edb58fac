"""Guards: imports point one way, the public API is __all__, import stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import shipyard

SRC = Path(shipyard.__file__).parent
# A layer may import itself and the layers to its right, never those to its left.
# Executors (where work runs) sit beside the stores: services use them, they use the domain.
# The client (remote mode) stands beside app: the same services' API over HTTP; the CLI
# picks one of the two, and the server never calls a client.
LAYERS = ["cli", "server", "app", "client", "services", "executors", "stores", "domain"]
ALLOWED = {
    # `shipyard serve` and `shipyard server` start the HTTP layer: the CLI may reach it.
    "cli": {"cli", "server", "app", "client", "services", "executors", "stores", "domain"},
    "client": {"client", "services", "stores", "domain"},
    "server": {"server", "app", "services", "executors", "stores", "domain"},
    "app": {"app", "services", "executors", "stores", "domain"},
    "services": {"services", "executors", "stores", "domain"},
    "executors": {"executors", "domain"},
    "stores": {"stores", "domain"},
    "domain": {"domain"},
}
SHARED = {"errors", "_version", "settings"}  # leaf modules any layer may use


def _layer(path: Path) -> str | None:
    rel = path.relative_to(SRC).parts
    head = rel[0].removesuffix(".py")
    return head if head in ALLOWED else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [name for name in found if name == "shipyard" or name.startswith("shipyard.")]


def test_imports_point_one_way() -> None:
    wrong = []
    for path in SRC.rglob("*.py"):
        layer = _layer(path)
        if layer is None:
            continue
        for name in _imports(path):
            parts = name.split(".")
            target = parts[1] if len(parts) > 1 else "shipyard"
            if target in SHARED:
                continue
            if target not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(SRC)} ({layer}) imports {name}")
    assert not wrong, "\n".join(wrong)


def test_settings_is_the_only_reader_of_the_environment_and_config() -> None:
    words = ("os.environ", "os.getenv", "CONFIG_FILE")
    allowed = {"settings.py", "projects.py"}  # projects.py writes the commented template
    readers = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if any(word in p.read_text() for word in words) and p.name not in allowed
    ]
    assert readers == []


def test_the_public_api_equals_dunder_all() -> None:
    assert sorted(shipyard.__all__) == shipyard.__all__
    lazy_services = {
        "autolog",
        "datasets",
        "models",
        "pipelines",
        "predictions",
        "registry",
        "runs",
    }
    for name in set(shipyard.__all__) - lazy_services:
        assert getattr(shipyard, name) is not None
    public = {
        name
        for name, value in vars(shipyard).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public -= {"annotations", "TYPE_CHECKING", "Any"}  # typing imports, not API
    # served by __getattr__ so that import stays light (datasets opens the default project)
    lazy = {
        "Settings",
        "Shipyard",
        "PythonModel",
        "autolog",
        "datasets",
        "models",
        "pipeline",
        "pipelines",
        "predictions",
        "registry",
        "runs",
        "schedules",
        "task",
    }
    assert public | lazy == set(shipyard.__all__) - {"__version__"}


def test_import_shipyard_does_no_io_and_loads_no_heavy_module() -> None:
    code = (
        "import sys, shipyard; "
        "heavy = [m for m in ('sqlalchemy', 'pyarrow', 'duckdb', 'numpy', 'typer', 'rich', "
        "'fsspec', 'alembic', 'pydantic') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_no_module_is_named_like_a_junk_drawer() -> None:
    banned = {"utils.py", "common.py", "helpers.py", "misc.py"}
    assert not [p for p in SRC.rglob("*.py") if p.name in banned]


def test_modules_stay_small() -> None:
    big = [
        (str(p.relative_to(SRC)), n)
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 800
    ]
    assert big == []
