"""The same dataset tests in local mode and in remote mode (a real server on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard.client import RemoteProject
from shipyard.domain.datasets import DatasetCard
from shipyard.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError
from shipyard.services.objects import StoredFile

from .conftest import Team


@pytest.fixture(params=["local", "remote"])
def datasets(request: pytest.FixtureRequest, team: Team) -> Iterator[Any]:
    """The dataset service of the project, or of a remote project through the server."""
    if request.param == "local":
        yield team.project.datasets
        return
    with RemoteProject(team.url, team.tokens["editor"]) as remote:
        yield remote.datasets


def _frame(rows: int, shift: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(rows),
            "amount": [float(i * 2 + shift) for i in range(rows)],
            "kind": ["a" if i % 3 else "b" for i in range(rows)],
        }
    )


def test_a_table_is_versioned_described_and_read_back(datasets: Any, tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    _frame(500).to_csv(source, index=False)
    first = datasets.add("orders", source, key="id", description="# Orders", tags={"t": "1"})
    assert first.created and first.version.ref == "orders@1"
    again = datasets.add("orders", source)
    assert not again.created and again.version.id == first.version.id
    _frame(520, shift=1).to_csv(source, index=False)
    second = datasets.add("orders", source, key="id")
    assert second.created and second.version.version == 2
    assert second.version.rows == 520 and second.version.card.tags == {}

    handle = datasets.get("orders@1")
    pd.testing.assert_frame_equal(handle.to_pandas(), _frame(500))
    profile = handle.profile()
    assert profile is not None and profile.rows == 500
    assert {c.name for c in profile.columns} == {"id", "amount", "kind"}
    assert [f.path for f in handle.files()] == ["orders.csv"]
    assert (handle.path() / "orders.csv").read_bytes() != source.read_bytes()  # v1, not v2
    assert datasets.resolve("orders@latest").version == 2
    assert [v.version for v in datasets.versions("orders")] == [1, 2]
    assert [s.name for s in datasets.list()] == ["orders"]
    assert first.version.card.description == "# Orders"

    datasets.label("orders@1", "golden")
    assert datasets.resolve("orders@golden").version == 1
    changes = datasets.diff("orders@1", "orders@2")
    assert changes.rows is not None and changes.rows.added == 20
    report = datasets.validate("orders@2", [{"kind": "not_null", "column": "id"}])
    assert report.ok
    failing = datasets.validate("orders@2", [{"kind": "range", "column": "amount", "max": 10}])
    assert not failing.ok


def test_a_folder_of_files_round_trips(datasets: Any, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    blobs = {"a.bin": os.urandom(2000), "sub/b.bin": os.urandom(5_000_000), "c.txt": b"c"}
    for name, data in blobs.items():
        (folder / name).write_bytes(data)
    added = datasets.add("images", folder)
    assert added.version.kind == "files" and added.version.file_count == 3
    out = tmp_path / "out"
    datasets.export(added.version, out)
    for name, data in blobs.items():
        assert (out / name).read_bytes() == data
    local = datasets.get("images@1").path()
    assert (local / "sub" / "b.bin").read_bytes() == blobs["sub/b.bin"]


def test_bad_input_is_refused_with_a_clear_error(datasets: Any, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InvalidArgumentError, match="dataset name"):
        datasets.add("../../etc/passwd", tmp_path / "t.csv")
    with pytest.raises(InvalidArgumentError, match="nothing-here"):
        datasets.add("ok", tmp_path / "nothing-here.csv")
    with pytest.raises(InvalidArgumentError, match="zzz"):
        datasets.add("ok", tmp_path / "t.csv", key="zzz")
    with pytest.raises(NotFoundError, match="ok"):
        datasets.resolve("ok@1")
    datasets.add("ok", tmp_path / "t.csv")
    with pytest.raises(NotFoundError):
        datasets.resolve("ok@7")
    with pytest.raises(InvalidArgumentError):
        datasets.label("ok@1", "latest")


def test_the_server_records_only_content_it_holds(team: Team, tmp_path: Path) -> None:
    with RemoteProject(team.url, team.tokens["editor"]) as remote:
        ghost = StoredFile("data.csv", 10, "blake3:" + "ab" * 32)
        card = DatasetCard(None, None, None, None, None, {})
        with pytest.raises(NotFoundError, match="upload them first"):
            remote.datasets.add_stored("ghost", [ghost], table_format=None, profile=None, card=card)
        real = remote.transfers.upload_bytes(b"0123456789")
        for bad in ("../up.csv", "/etc/passwd", "a/../../b"):
            with pytest.raises(InvalidArgumentError):
                remote.datasets.add_stored(
                    "ghost",
                    [StoredFile(bad, 10, real)],
                    table_format=None,
                    profile=None,
                    card=card,
                )
        with pytest.raises(InvalidArgumentError, match="sizes"):
            remote.datasets.add_stored(
                "ghost", [StoredFile("x.bin", 11, real)], table_format=None, profile=None, card=card
            )
        with pytest.raises(InvalidArgumentError, match="profile"):
            remote.datasets.add_stored(
                "ghost",
                [StoredFile("x.csv", 10, real)],
                table_format="csv",
                profile=None,
                card=card,
            )
    with pytest.raises(NotFoundError):
        team.project.datasets.versions("ghost")


def test_writes_need_an_editor_and_record_the_token_user(team: Team, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a\n1\n")
    with (
        RemoteProject(team.url, team.tokens["viewer"]) as viewer,
        pytest.raises(PermissionDeniedError, match="vic"),
    ):
        viewer.datasets.add("mine", tmp_path / "t.csv")
    with RemoteProject(team.url, team.tokens["editor"]) as editor:
        added = editor.datasets.add("mine", tmp_path / "t.csv")
    assert added.version.created_by == "eddie"
    assert team.project.datasets.resolve("mine@1").card.owner == "eddie"
    entries = team.project.audit.list(entity_kind="dataset_version")
    assert any(e.actor == "eddie" and e.entity_id == "mine@1" for e in entries)


def test_sy_services_go_to_the_server(team: Team, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,x\n2,y\n")
    script = (
        "import shipyard as sy\n"
        "added = sy.datasets.add('sdk', 't.csv')\n"
        "print(added.version.ref, len(sy.datasets.get('sdk@1').to_pandas()))\n"
        "print(type(sy.models).__name__, type(sy.registry).__name__)\n"
        "try:\n"
        "    sy.predictions.read('nothing-logged')\n"
        "except sy.NotFoundError as exc:\n"
        "    print('not found:', exc)\n"
        "@sy.task\n"
        "def one() -> int:\n"
        "    return 1\n"
        "@sy.pipeline\n"
        "def flow() -> int:\n"
        "    return one()\n"
        "ran = flow()\n"
        "print('ran:', ran.status, ran.result, ran.id)\n"
        "print(sy.pipelines.get(ran.id).created_by, type(sy.pipelines).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_URI=team.url, SHIPYARD_TOKEN=team.tokens["editor"])
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "sdk@1 2"
    assert lines[1] == "RemoteModelService RemoteRegistryService"
    assert lines[2].startswith("not found:") and "nothing-logged" in lines[2]
    _, status, result, run_id = lines[3].split()
    assert (status, result) == ("succeeded", "1")
    assert team.project.pipelines.get(run_id).created_by == "eddie"
    assert lines[4] == "eddie RemotePipelineService"
    assert team.project.datasets.resolve("sdk@1").created_by == "eddie"
    assert not (tmp_path / ".shipyard").exists()
