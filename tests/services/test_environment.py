from __future__ import annotations

import getpass
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pyarrow
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.services import environment
from shipyard.services.environment import ResourceMeter, capture_environment, process_alive

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").is_file(), reason="needs /proc to read process start times"
)
HOST = socket.gethostname()


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, timeout=30
    )
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree with one commit, isolated from the user's and the system's git config."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    # Nothing above tmp_path may count as the repository of a folder that is not one.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.com")
    (path / "train.py").write_text("print('train')\n")
    git(path, "add", "train.py")
    git(path, "commit", "--quiet", "-m", "first")
    return path


@needs_git
def test_git_describes_a_clean_work_tree(repo: Path) -> None:
    (repo / "untracked.txt").write_text("not part of the code\n")
    state = capture_environment(repo)["git"]
    assert state == {
        "commit": git(repo, "rev-parse", "HEAD"),
        "branch": "main",
        "dirty": False,
        "remote": None,
        "root": str(repo.resolve()),
    }


@needs_git
def test_git_reports_the_root_from_a_subfolder(repo: Path) -> None:
    (repo / "src").mkdir()
    assert capture_environment(repo / "src")["git"]["root"] == str(repo.resolve())


@needs_git
@pytest.mark.parametrize("staged", [False, True])
def test_git_is_dirty_when_a_tracked_file_changes(repo: Path, staged: bool) -> None:
    (repo / "train.py").write_text("print('changed')\n")
    if staged:
        git(repo, "add", "train.py")
    assert capture_environment(repo)["git"]["dirty"] is True


@needs_git
@pytest.mark.parametrize(
    ("url", "recorded"),
    [
        ("https://user:secret@example.com/r.git", "https://example.com/r.git"),
        ("https://ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("ssh://git@example.com:2222/o/r.git", "ssh://example.com:2222/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("https://example.com/r.git", "https://example.com/r.git"),
    ],
)
def test_git_remote_drops_credentials(repo: Path, url: str, recorded: str) -> None:
    git(repo, "remote", "add", "origin", url)
    assert capture_environment(repo)["git"]["remote"] == recorded


@needs_git
def test_git_branch_is_none_on_a_detached_head(repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "--quiet", "--detach", commit)
    state = capture_environment(repo)["git"]
    assert state["branch"] is None
    assert state["commit"] == commit


@needs_git
def test_git_commit_is_none_before_the_first_commit(repo: Path) -> None:
    fresh = repo.parent / "fresh"
    fresh.mkdir()
    git(fresh, "init", "--quiet", "--initial-branch=trunk")
    state = capture_environment(fresh)["git"]
    assert state["commit"] is None
    assert state["branch"] == "trunk"


@needs_git
def test_git_is_none_outside_a_work_tree(repo: Path) -> None:
    elsewhere = repo.parent / "elsewhere"
    elsewhere.mkdir()
    assert capture_environment(elsewhere)["git"] is None
    assert capture_environment(repo / ".git")["git"] is None


def test_git_is_none_without_a_git_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert capture_environment(tmp_path)["git"] is None


def test_git_is_none_for_a_missing_folder(tmp_path: Path) -> None:
    assert capture_environment(tmp_path / "gone")["git"] is None


@pytest.mark.skipif(sys.platform == "win32", reason="the fake git is a shell script")
def test_git_gives_up_after_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "git"
    fake.write_text("#!/bin/sh\nexec sleep 10\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.defpath}")
    monkeypatch.setattr(environment, "_GIT_TIMEOUT_SECONDS", 0.2)
    begin = time.perf_counter()
    assert capture_environment(tmp_path)["git"] is None
    assert time.perf_counter() - begin < 5


@pytest.mark.parametrize(
    ("argv", "recorded"),
    [
        (["--token", "abc", "--lr", "0.1"], ["--token", "***", "--lr", "0.1"]),
        (["--password", "hunter2", "--secret", "s", "--api-key", "k"],
         ["--password", "***", "--secret", "***", "--api-key", "***"]),
        (["--API_KEY", "k"], ["--API_KEY", "***"]),
        (["--token=abc", "--api-key=k", "--epochs=3"],
         ["--token=***", "--api-key=***", "--epochs=3"]),
        (["HF_TOKEN=abc", "db_password=pw", "AWS_SECRET_ACCESS_KEY=x", "seed=1"],
         ["HF_TOKEN=***", "db_password=***", "AWS_SECRET_ACCESS_KEY=***", "seed=1"]),
        (["--token", "--password", "pw"], ["--token", "--password", "***"]),
        (["--token"], ["--token"]),
        (["--db", "postgresql://me:pw@db.example.com/runs"],
         ["--db", "postgresql://***@db.example.com/runs"]),
        (["positional", "--verbose"], ["positional", "--verbose"]),
    ],
)  # fmt: skip
def test_argv_secrets_are_redacted(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], recorded: list[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    assert capture_environment()["entry_point"]["argv"] == recorded


def test_script_is_made_absolute_when_it_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "train.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "--epochs", "3"])
    entry = capture_environment(tmp_path)["entry_point"]
    assert entry == {"script": str((tmp_path / "train.py").resolve()), "argv": ["--epochs", "3"]}


@pytest.mark.parametrize("argv0", ["-c", "ipykernel_launcher", ""])
def test_script_is_kept_as_given_when_it_is_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv0: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [argv0])
    assert capture_environment(tmp_path)["entry_point"] == {"script": argv0, "argv": []}


def test_entry_point_survives_an_empty_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [])
    assert capture_environment()["entry_point"] == {"script": None, "argv": []}


def test_packages_report_the_installed_versions() -> None:
    packages = capture_environment()["packages"]
    assert packages["numpy"] == numpy.__version__
    assert packages["pyarrow"] == pyarrow.__version__
    assert packages["shipyard"] == importlib.metadata.version("shipyard")
    assert "pytest" not in packages  # not in the ML set unless asked for


def test_extra_packages_are_looked_up_by_normalised_name() -> None:
    packages = capture_environment(extra_packages=["PyTest", "No_Such.Distribution-xyz"])[
        "packages"
    ]
    assert packages["pytest"] == pytest.__version__
    assert "no-such-distribution-xyz" not in packages
    assert all(name == name.lower() and "_" not in name for name in packages)


@pytest.mark.parametrize("extra", ["pytest", [""], ["not a name"], [3]])
def test_extra_packages_must_be_a_list_of_distribution_names(extra: object) -> None:
    with pytest.raises(InvalidArgumentError):
        capture_environment(extra_packages=extra)  # type: ignore[arg-type]


def test_package_lookup_is_fast() -> None:
    timings = []
    for _ in range(5):
        begin = time.perf_counter()
        environment._package_versions(["pytest"])
        timings.append(time.perf_counter() - begin)
    assert min(timings) < 0.05


def test_python_host_and_user_describe_this_process() -> None:
    captured = capture_environment()
    assert captured["python"] == {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }
    host = captured["host"]
    assert host["hostname"] == HOST
    assert host["platform"] == platform.platform()
    assert host["machine"] == platform.machine()
    assert host["cpu_count"] == os.cpu_count()
    if hasattr(os, "sysconf"):
        assert host["memory_total_bytes"] > 64 * 1024 * 1024
    assert captured["user"] == getpass.getuser()


@pytest.mark.parametrize("error", [KeyError("uid 12345"), OSError("no user")])
def test_user_is_none_when_it_cannot_be_found(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def getuser() -> str:
        raise error

    monkeypatch.setattr(getpass, "getuser", getuser)
    assert capture_environment()["user"] is None


@needs_git
def test_everything_captured_is_json_serialisable(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(repo, "remote", "add", "origin", "https://user:secret@example.com/r.git")
    monkeypatch.setattr(sys, "argv", ["train.py", "--token", "abc"])
    captured = capture_environment(repo, extra_packages=["pytest"])
    assert json.loads(json.dumps(captured)) == captured
    assert "secret" not in json.dumps(captured)
    assert "abc" not in json.dumps(captured["entry_point"])


def busy(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def test_resource_meter_measures_cpu_of_this_process() -> None:
    meter = ResourceMeter.start()
    busy(0.2)
    usage = meter.stop()
    assert set(usage) == {"wall_seconds", "cpu_seconds", "children_cpu_seconds", "peak_rss_bytes"}
    assert usage["cpu_seconds"] > 0.05
    assert usage["wall_seconds"] >= 0.15
    assert usage["children_cpu_seconds"] < 0.05
    assert json.loads(json.dumps(usage)) == usage


def test_resource_meter_counts_children_that_were_waited_for() -> None:
    meter = ResourceMeter.start()
    code = "import time\nd = time.process_time() + 0.3\nwhile time.process_time() < d: pass"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    usage = meter.stop()
    assert usage["children_cpu_seconds"] > 0.25
    assert usage["cpu_seconds"] >= usage["children_cpu_seconds"]


def test_resource_meter_can_be_read_more_than_once() -> None:
    meter = ResourceMeter.start()
    first = meter.stop()
    busy(0.05)
    second = meter.stop()
    assert second["wall_seconds"] > first["wall_seconds"]
    assert second["cpu_seconds"] >= first["cpu_seconds"]


PEAK_RSS_SCRIPT = """
import json
from shipyard.services.environment import ResourceMeter
meter = ResourceMeter.start()
before = meter.stop()["peak_rss_bytes"]
block = bytearray(100 * 1024 * 1024)
for i in range(0, len(block), 4096):  # touch every page so that it is really resident
    block[i] = 1
print(json.dumps([before, meter.stop()["peak_rss_bytes"]]))
"""


def peak_rss_of_a_fresh_interpreter() -> tuple[int, int]:
    """Peak RSS before and after allocating 100 MiB, in an interpreter that starts small."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    before, after = json.loads(result.stdout)
    return before, after


def test_peak_rss_grows_after_a_large_allocation() -> None:
    before, after = peak_rss_of_a_fresh_interpreter()
    assert before > 1024 * 1024  # bytes, not KiB: an interpreter needs more than 1 MiB
    assert after - before >= 90 * 1024 * 1024


@needs_proc
def test_peak_rss_is_not_inherited_from_a_bigger_parent() -> None:
    # Linux's ru_maxrss would report this process's 300 MiB peak in the child it starts.
    block = bytearray(300 * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    before, _ = peak_rss_of_a_fresh_interpreter()
    del block
    assert before < 200 * 1024 * 1024


def test_this_process_is_alive() -> None:
    assert process_alive(os.getpid(), HOST) is True
    assert process_alive(os.getpid(), HOST.upper()) is True


def test_liveness_on_another_host_is_unknown() -> None:
    assert process_alive(os.getpid(), f"not-{HOST}") is None


def test_a_finished_child_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    assert process_alive(child.pid, HOST) is False


@pytest.mark.parametrize("pid", [0, -1, 2**40])
def test_impossible_pids_are_not_alive(pid: int) -> None:
    assert process_alive(pid, HOST) is False


@needs_proc
def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Wait for the exit without reaping it, so the pid stays a zombie.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert process_alive(child.pid, HOST) is False
    finally:
        child.wait(timeout=60)


@needs_proc
def test_a_reused_pid_is_not_the_runs_process() -> None:
    # A run that started long ago recorded a pid; the process now holding that pid began later.
    assert process_alive(os.getpid(), HOST, started_at=0.0) is False
    recorded_at = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(child.pid, HOST, started_at=recorded_at - 60) is False
        # The run recorded its start just before its process was spawned: that process is it.
        assert process_alive(child.pid, HOST, started_at=recorded_at) is True
        # A start recorded later than the process began is consistent with it too.
        assert process_alive(child.pid, HOST, started_at=recorded_at + 3600) is True
    finally:
        child.kill()
        child.wait(timeout=60)


def test_the_public_api_is_dunder_all() -> None:
    assert environment.__all__ == ["ResourceMeter", "capture_environment", "process_alive"]
