"""Durations, memory sizes and task options as users write them."""

from __future__ import annotations

import pytest

from shipyard.domain.pipelines import TaskOptions, parse_duration, parse_memory
from shipyard.errors import InvalidArgumentError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        (" 45 ", 45.0),
        (12, 12.0),
        (0.5, 0.5),
        (None, None),
    ],
)
def test_durations_are_read_in_seconds(text: str | float | None, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "10 minutes", "-5s", "0s", "", "1e9x"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2_000_000_000),
        ("512MB", 512_000_000),
        ("1GiB", 1 << 30),
        ("100k", 100_000),
        ("64Mi", 64 << 20),
        ("1024", 1024),
        (4096, 4096),
    ],
)
def test_memory_sizes_are_read_in_bytes(text: str | int, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["lots", "2 PB", "-1", "GB"])
def test_a_bad_memory_size_is_rejected(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="memory"):
        parse_memory(text)


def test_a_task_with_a_timeout_is_isolated_unless_told_otherwise() -> None:
    timed = TaskOptions.parse(timeout="10m", resources={"cpu": 2, "memory": "2GB"})
    assert timed.timeout == 600.0 and timed.isolate
    assert timed.resources == {"cpu": 2.0, "memory": 2e9}
    assert not TaskOptions.parse().isolate
    assert TaskOptions.parse(isolate=True).isolate


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retry_jitter": 2}, "retry_jitter"),
        ({"resources": {"cpu": "many"}}, "cpu"),
        ({"timeout": "forever"}, "duration"),
    ],
)
def test_bad_task_options_are_rejected(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        TaskOptions.parse(**options)  # type: ignore[arg-type]
