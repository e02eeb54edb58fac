"""What a run records about itself without being asked: code, command, interpreter, host, cost.

``capture_environment`` answers "what exactly ran, and where": the git commit and whether the
work tree had uncommitted changes, the command line (secrets redacted), the interpreter, the
versions of the packages that decide a model's numbers, the host and the OS user.
``ResourceMeter`` answers "what did it cost": wall time, CPU time (the run's own and that of the
child processes it waited for) and peak memory. ``process_alive`` answers "is it still
running", so that runs whose process died can be marked as killed.

Example::

    meter = ResourceMeter.start()
    environment = capture_environment()
    ...  # train
    usage = meter.stop()  # {"wall_seconds": 12.3, "cpu_seconds": 40.1, ...}
"""

from __future__ import annotations

import contextlib
import getpass
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from shipyard.errors import InvalidArgumentError, NotSupportedError

if sys.platform != "win32":
    import resource

__all__ = ["ResourceMeter", "capture_environment", "process_alive"]

# The distributions whose versions change a model's numbers or how it is stored and served.
_ML_PACKAGES = frozenset(
    {
        "catboost",
        "duckdb",
        "jax",
        "lightgbm",
        "lightning",
        "numpy",
        "onnx",
        "onnxruntime",
        "pandas",
        "polars",
        "pyarrow",
        "ray",
        "scikit-learn",
        "scipy",
        "shipyard",
        "skl2onnx",
        "sqlalchemy",
        "tensorflow",
        "torch",
        "transformers",
        "xgboost",
    }
)

_REDACTED = "***"

_GIT_TIMEOUT_SECONDS = 2.0
# Flags whose value is the next argument and is a secret (compared after lower-casing and
# turning "_" into "-", so --API_KEY counts too).
_SECRET_FLAGS = frozenset({"--token", "--password", "--secret", "--api-key"})
# A KEY=value (or --key=value) argument is a secret when KEY, upper-cased with "-" turned into
# "_", contains one of these. Substrings over-redact (max_tokens=512) on purpose: losing a
# hyper-parameter from the record is cheaper than leaking a credential into it.
_SECRET_KEY_WORDS = ("TOKEN", "PASSWORD", "SECRET", "API_KEY", "APIKEY")
# The user-info part of a URL ("user:password@" or a bare token as user name).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
# PEP 508 distribution names.
_DISTRIBUTION_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# Start times read from /proc have 1 s and 1/CLK_TCK resolution and the boot time can drift
# with clock adjustments: a process this much younger than the run still counts as the run's.
_START_TOLERANCE_SECONDS = 2.0


def capture_environment(
    cwd: Path | None = None, extra_packages: Iterable[str] = ()
) -> dict[str, Any]:
    """Describe the code, command, interpreter, packages, host and user of this process.

    Every value is JSON-safe (str, int, float, bool, None, lists and dicts of them). Nothing
    here raises because the environment is unusual: a missing piece is ``None``.

    Args:
        cwd: Where to look for the git work tree; the current directory when omitted.
        extra_packages: Distribution names to report besides the fixed ML set, spelled as pip
            knows them (``"torchvision"``, ``"my_features"``); names not installed are left out.

    Returns:
        A dict with these keys:

        - ``git``: ``{"commit", "branch", "dirty", "remote", "root"}``, or ``None`` outside a
          git work tree or without a usable ``git``. ``commit`` is ``None`` before the first
          commit, ``branch`` on a detached HEAD; ``dirty`` says whether tracked files have
          uncommitted (staged or unstaged) changes and is ``None`` if that could not be
          determined in time; ``remote`` is origin's URL without credentials.
        - ``entry_point``: ``{"script", "argv"}``: ``sys.argv[0]`` (absolute when it names a
          file) and the arguments after it, with secret values replaced by ``"***"``.
        - ``python``: ``{"version", "implementation", "executable"}``.
        - ``packages``: ``{normalised name: version}`` of the installed distributions among
          the ML set and ``extra_packages``.
        - ``host``: ``{"hostname", "platform", "machine", "cpu_count", "memory_total_bytes"}``.
        - ``user``: the OS user name, or ``None`` if it cannot be found.

    Raises:
        InvalidArgumentError: if ``extra_packages`` is a single string or holds a name that
            cannot be a distribution name.
    """
    return {
        "git": _git_state(cwd),
        "entry_point": _entry_point(sys.argv),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": _package_versions(extra_packages),
        "host": {
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "memory_total_bytes": _memory_total_bytes(),
        },
        "user": _user(),
    }


class _Sample(NamedTuple):
    wall: float
    self_cpu: float
    children_cpu: float


class ResourceMeter:
    """Wall time, CPU time and peak memory of this process since ``start()``.

    CPU time covers every thread of this process and the child processes that finished and
    were waited for in between (``subprocess.run`` waits; a child still running at ``stop()``
    is not counted). Peak memory is the resident-set high-water mark of this process since it
    began (not of its children), which cannot be reset: a run that follows a bigger one in the
    same process reports the bigger peak.

    Example::

        meter = ResourceMeter.start()
        train()
        usage = meter.stop()

    Args:
        started: The sample taken at start; use ``ResourceMeter.start()`` instead.
    """

    __slots__ = ("_started",)

    def __init__(self, started: _Sample) -> None:
        self._started = started

    @classmethod
    def start(cls) -> ResourceMeter:
        """Start measuring now.

        Raises:
            NotSupportedError: on Windows, which has no ``getrusage``.
        """
        return cls(_sample())

    def stop(self) -> dict[str, float | int]:
        """Measure what was used since ``start()``; may be called again for a later reading.

        Returns:
            ``wall_seconds``, ``cpu_seconds`` (user + system of this process and its waited-for
            children), ``children_cpu_seconds`` (the children's share) and ``peak_rss_bytes``.
        """
        now = _sample()
        children = now.children_cpu - self._started.children_cpu
        return {
            "wall_seconds": now.wall - self._started.wall,
            "cpu_seconds": now.self_cpu - self._started.self_cpu + children,
            "children_cpu_seconds": children,
            "peak_rss_bytes": _peak_rss_bytes(),
        }


def process_alive(pid: int, host: str, started_at: float | None = None) -> bool | None:
    """Whether the process of a run is still running.

    Args:
        pid: The run's process id.
        host: The host name the run recorded (``capture_environment()["host"]["hostname"]``).
        started_at: When the run started (seconds since the epoch). Where ``/proc`` shows the
            process's start time, a process that started more than 2 s after this is a later
            process that reuses the pid, and the run's own process is gone.

    Returns:
        ``None`` if ``host`` is another machine or the OS cannot be asked (Windows, or the
        signal probe fails for a reason other than "no such process" or "not yours");
        ``False`` if no such process runs (or only its zombie is left) or the pid was reused;
        ``True`` otherwise, including a live process of another user.
    """
    if sys.platform == "win32":
        # os.kill(pid, 0) terminates the process on Windows instead of probing it.
        return None
    if host.casefold() != socket.gethostname().casefold():
        return None
    if pid <= 0:
        # 0 and negative numbers address process groups, never one run's process.
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False  # no such process, or a number larger than any pid can be
    except OSError as exc:
        if not isinstance(exc, PermissionError):  # PermissionError: it runs as another user
            return None
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc here (macOS), or hidden from us: the signal probe has to do
    state, started = stat
    if state in {"Z", "X"}:
        return False
    return not (started_at is not None and started > started_at + _START_TOLERANCE_SECONDS)


def _git(args: Sequence[str], cwd: Path | None) -> str | None:
    """Run one git command; its stripped output, or None when it fails in any way."""
    try:
        result = subprocess.run(
            # --no-optional-locks is GIT_OPTIONAL_LOCKS=0: `status` must not take index.lock
            # and trip up a git command the user runs at the same time.
            ["git", "--no-optional-locks", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            encoding="utf-8",
            errors="replace",
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _git_state(cwd: Path | None) -> dict[str, Any] | None:
    root = _git(["rev-parse", "--show-toplevel"], cwd)
    if not root:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    remote = _git(["remote", "get-url", "origin"], cwd)
    return {
        "commit": _git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd) or None,
        "branch": _git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd) or None,
        "dirty": None if status is None else status != "",
        "remote": _URL_USERINFO.sub(r"\g<scheme>", remote) if remote else None,
        "root": root,
    }


def _entry_point(argv: Sequence[str]) -> dict[str, Any]:
    if not argv:
        return {"script": None, "argv": []}
    script = argv[0]
    # an unreadable path is still worth recording as given
    with contextlib.suppress(OSError):
        if script and Path(script).is_file():
            script = str(Path(script).resolve())
    return {"script": script, "argv": _redact_argv(argv[1:])}


def _redact_argv(args: Sequence[str]) -> list[str]:
    redacted: list[str] = []
    secret_follows = False
    for arg in args:
        if arg.lower().replace("_", "-") in _SECRET_FLAGS:
            # A secret flag right after another one means the first had no value.
            redacted.append(arg)
            secret_follows = True
            continue
        if secret_follows:
            redacted.append(_REDACTED)
            secret_follows = False
            continue
        key, equals, _ = arg.partition("=")
        normalised = key.upper().replace("-", "_")
        if equals and any(word in normalised for word in _SECRET_KEY_WORDS):
            redacted.append(f"{key}={_REDACTED}")
        else:
            redacted.append(_URL_USERINFO.sub(rf"\g<scheme>{_REDACTED}@", arg))
    return redacted


def _package_versions(extra_packages: Iterable[str]) -> dict[str, str]:
    if isinstance(extra_packages, str):
        raise InvalidArgumentError(
            f"extra_packages takes a list of names, not the string {extra_packages!r}; "
            f"pass [{extra_packages!r}]"
        )
    names = set(_ML_PACKAGES)
    for name in extra_packages:
        if not isinstance(name, str) or not _DISTRIBUTION_NAME.match(name):
            raise InvalidArgumentError(
                f"{name!r} is not a distribution name; pass names as pip knows them, "
                "e.g. 'scikit-learn'"
            )
        names.add(re.sub(r"[-_.]+", "-", name).lower())
    versions: dict[str, str] = {}
    # One lookup per name: walking every installed distribution costs 10-100x more.
    for name in sorted(names):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _memory_total_bytes() -> int | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None  # no sysconf (Windows) or the name is unknown here
    return pages * page_size if pages > 0 and page_size > 0 else None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        # A uid without a passwd entry (containers) and no LOGNAME/USER variable.
        return None


def _sample() -> _Sample:
    if sys.platform == "win32":
        raise NotSupportedError(f"this platform ({sys.platform})", "resource metering")
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _Sample(
        wall=time.perf_counter(),
        self_cpu=own.ru_utime + own.ru_stime,
        children_cpu=children.ru_utime + children.ru_stime,
    )


def _peak_rss_bytes() -> int:
    if sys.platform == "win32":
        raise NotSupportedError(f"this platform ({sys.platform})", "resource metering")
    if sys.platform == "linux":
        # Linux's ru_maxrss keeps the peak of the program that called exec(), so a small run
        # started by a big parent would report the parent's peak; VmHWM is this program's own.
        # without /proc, ru_maxrss below is the next best thing
        with contextlib.suppress(OSError, IndexError, ValueError):
            status = Path("/proc/self/status").read_text(encoding="utf-8", errors="replace")
            hwm = [line.split() for line in status.splitlines() if line.startswith("VmHWM:")]
            return int(hwm[0][1]) * 1024  # reported in kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # macOS reports bytes; Linux and the BSDs report KiB.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _proc_stat(pid: int) -> tuple[str, float] | None:
    """The state letter and start time (epoch seconds) of a process from /proc, if readable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        boot = Path("/proc/stat").read_text(encoding="utf-8", errors="replace")
        ticks_per_second = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    # The command name in parentheses may itself hold spaces and ")"; fields follow the last.
    fields = stat.rpartition(")")[2].split()
    boot_lines = [line.split() for line in boot.splitlines() if line.startswith("btime ")]
    try:
        boot_time = int(boot_lines[0][1])
        # fields[0] is field 3 of proc(5), the state; fields[19] is field 22, the start time
        # in clock ticks after boot.
        return fields[0], boot_time + int(fields[19]) / ticks_per_second
    except (IndexError, ValueError, ZeroDivisionError):
        return None
