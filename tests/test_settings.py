from __future__ import annotations

import re
from pathlib import Path

import pytest

from shipyard.errors import SettingsError
from shipyard.services.projects import config_template
from shipyard.settings import SETTINGS, Settings

DOCS = Path(__file__).parents[1] / "docs"


def test_defaults_are_the_embedded_stores_under_the_project(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, env={})
    assert settings.root == tmp_path.resolve()
    assert settings.metadata_uri == f"sqlite:///{tmp_path.resolve()}/.shipyard/shipyard.db"
    assert settings.artifact_uri == str(tmp_path.resolve() / ".shipyard" / "artifacts")
    assert settings.durability == "full"
    assert settings.executor == "local"
    assert settings.server_uri is None


def test_environment_beats_the_file_and_options_beat_both(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text(
        '[store]\nartifacts = "blobs"\ndurability = "normal"\n[executor]\nkind = "ray"\n'
    )
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    env = {"SHIPYARD_EXECUTOR": "ray://head:10001", "SHIPYARD_TOKEN": "secret"}
    settings = Settings.load(nested, env=env)
    assert settings.root == tmp_path.resolve()
    assert settings.artifact_uri == str(tmp_path.resolve() / "blobs")
    assert settings.durability == "normal"
    assert settings.executor == "ray://head:10001"
    assert settings.token == "secret"
    assert Settings.load(nested, env=env, executor="local").executor == "local"


def test_fsspec_urls_are_kept_as_they_are(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, env={"SHIPYARD_ARTIFACT_URI": "s3://bucket/prefix"})
    assert settings.artifact_uri == "s3://bucket/prefix"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[store]\nmetadata = ", "not valid TOML"),
        ("[store]\nbogus = 1\n", "unknown setting"),
        ("[nowhere]\nkind = 1\n", "unknown setting"),
        ('[store]\ndurability = "sometimes"\n', "durability"),
        ('store = "x"\n', "section"),
    ],
)
def test_a_bad_config_file_names_the_problem(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "shipyard.toml").write_text(text)
    with pytest.raises(SettingsError, match=match):
        Settings.load(tmp_path, env={})


def test_the_init_template_is_valid_and_loads_to_the_defaults(tmp_path: Path) -> None:
    bare = Settings.load(tmp_path, env={})
    (tmp_path / "shipyard.toml").write_text(config_template())
    assert Settings.load(tmp_path, env={}) == bare
    for spec in SETTINGS:
        assert spec.env in config_template()


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.md").read_text()
    for spec in SETTINGS:
        assert re.search(rf"`{spec.section}\.{spec.key}`", text), spec.key
        assert spec.env in text
