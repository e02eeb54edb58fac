"""Load generators: wrk (closed loop, keep-alive) and an asyncio open-loop client.

Both run in their own process pinned to the load core, so the server keeps its core.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOAD_CORE = "1"


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def to_dict(self) -> dict[str, float]:
        return {
            "rps": self.rps,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "requests": self.requests,
            "errors": self.errors,
        }


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk_script(folder: Path, body: str, content_type: str = "application/json") -> Path:
    """A Lua script that POSTs ``body`` on every request."""
    path = folder / "post.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )
    return path


def run_wrk(url: str, script: Path, *, connections: int, seconds: float) -> LoadResult:
    """wrk with one thread and ``connections`` keep-alive connections, pinned to the load core."""
    argv = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
        "--latency", "--timeout", "10s", "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return LoadResult(rps, p50, p99, total, errors)


# -- open loop -----------------------------------------------------------------------------


async def _open_loop(
    host: str, port: int, path: str, body: bytes, rate: float, seconds: float, pool: int
) -> tuple[list[float], int, float]:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(pool):
        free.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        reader, writer = await free.get()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != 200:
                errors += 1
            # From the time the request was due, not sent: no coordinated omission.
            latencies.append(time.perf_counter() - scheduled)
        finally:
            free.put_nowait((reader, writer))

    total = int(rate * seconds)
    start = time.perf_counter()
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not free.empty():
        _, writer = free.get_nowait()
        writer.close()
    return latencies, errors, elapsed


def open_loop_main(argv: list[str]) -> int:
    """``python load.py open HOST PORT PATH BODY_FILE RATE SECONDS POOL``: prints JSON."""
    host, port, path, body_file, rate, seconds, pool = argv
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    latencies, errors, elapsed = asyncio.run(
        _open_loop(
            host, int(port), path, Path(body_file).read_bytes(), float(rate), float(seconds),
            int(pool),
        )
    )  # fmt: skip
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3

    print(
        json.dumps(
            {
                "rps": len(latencies) / elapsed,
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
                "requests": len(latencies),
                "errors": errors,
            }
        )
    )
    return 0


def run_open_loop(
    host: str, port: int, path: str, body_file: Path, *, rate: float, seconds: float, pool: int = 64
) -> LoadResult:
    """The open-loop client in its own process on the load core."""
    argv = [
        "taskset", "-c", LOAD_CORE, sys.executable, __file__, "open", host, str(port), path,
        str(body_file), str(rate), str(seconds), str(pool),
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return LoadResult(**data)


if __name__ == "__main__":
    if sys.argv[1:2] == ["open"]:
        sys.exit(open_loop_main(sys.argv[2:]))
    sys.exit(f"usage: {sys.argv[0]} open HOST PORT PATH BODY_FILE RATE SECONDS POOL")
