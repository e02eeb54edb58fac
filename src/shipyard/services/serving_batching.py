"""Adaptive micro-batching: single-row requests that arrive together run as one batch.

Nothing waits when the server is idle: a request queued alone runs on the next turn of the
event loop. Under load, requests parsed in the same turn are taken together; while more
keep arriving (and for at most ``max_wait_us`` since the oldest), the batch waits one more
turn. A batch never holds more than ``max_batch`` rows. A model that runs in a thread
(``executor``) is given the next batch as soon as it finishes the current one, so the rows
that arrived meanwhile make up that batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

from shipyard.services.serving_inputs import Frame

__all__ = ["BatchOptions", "MicroBatcher"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """How single-row requests are batched.

    Attributes:
        enabled: batch at all.
        max_batch: most rows in one batch.
        max_wait_us: longest a row waits for companions while more keep arriving.
    """

    enabled: bool = True
    max_batch: int = 64
    max_wait_us: int = 500


class MicroBatcher(Generic[T]):
    """Collects frames, runs them as one, and hands each caller its own rows' results.

    Args:
        run: predicts a frame; its result must support ``split(offsets)``.
        split: cuts a batch result into per-frame results by row offsets.
        options: batch size and wait.
        executor: where ``run`` executes; None runs it on the event loop (for fast models
            whose call costs less than a thread hand-off).
        on_batch: called with each batch's size (for metrics).
    """

    def __init__(
        self,
        run: Callable[[Frame], T],
        split: Callable[[T, list[int]], list[T]],
        options: BatchOptions,
        *,
        executor: Executor | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self._split = split
        self._max = max(1, options.max_batch)
        self._wait_ns = max(0, options.max_wait_us) * 1000
        self._executor = executor
        self._on_batch = on_batch
        self._pending: list[tuple[Frame, asyncio.Future[T]]] = []
        self._scheduled = False
        self._busy = False
        self._seen = 0
        self._oldest = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, frame: Frame) -> asyncio.Future[T]:
        """Queue a frame; the future resolves to its rows' results."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop: start afresh
            self._loop, self._pending, self._scheduled, self._busy = loop, [], False, False
        future: asyncio.Future[T] = loop.create_future()
        pending = self._pending
        pending.append((frame, future))
        if not self._scheduled and not self._busy:
            self._scheduled = True
            self._seen = len(pending)
            self._oldest = time.monotonic_ns()
            loop.call_soon(self._turn)
        return future

    def _turn(self) -> None:
        count = len(self._pending)
        if self._seen < count < self._max and time.monotonic_ns() - self._oldest < self._wait_ns:
            self._seen = count  # still arriving: gather one more turn
            assert self._loop is not None
            self._loop.call_soon(self._turn)
            return
        self._scheduled = False
        self._flush()

    def _flush(self) -> None:
        if self._busy or not self._pending:
            return
        batch, self._pending = self._pending[: self._max], self._pending[self._max :]
        frames = [frame for frame, _ in batch]
        merged = Frame.concat(frames)
        if self._on_batch is not None:
            self._on_batch(merged.rows)
        if self._executor is None:
            try:
                result = self._run(merged)
            except Exception as exc:
                self._fail(batch, exc)
            else:
                self._deliver(batch, result)
            self._again()
            return
        self._busy = True
        assert self._loop is not None
        done = self._loop.run_in_executor(self._executor, self._run, merged)
        done.add_done_callback(lambda f: self._finished(batch, f))

    def _finished(
        self, batch: list[tuple[Frame, asyncio.Future[T]]], done: asyncio.Future[T]
    ) -> None:
        self._busy = False
        exc = done.exception()
        if exc is not None:
            self._fail(batch, exc)
        else:
            self._deliver(batch, done.result())
        self._again()

    def _again(self) -> None:
        if self._pending and not self._scheduled:
            self._scheduled = True
            self._seen = len(self._pending)
            self._oldest = time.monotonic_ns()
            assert self._loop is not None
            self._loop.call_soon(self._turn)

    def _deliver(self, batch: list[tuple[Frame, asyncio.Future[T]]], result: T) -> None:
        if len(batch) == 1:
            parts = [result]
        else:
            offsets, at = [], 0
            for frame, _ in batch:
                at += frame.rows
                offsets.append(at)
            parts = self._split(result, offsets)
        for (_, future), part in zip(batch, parts, strict=True):
            if not future.done():
                future.set_result(part)

    @staticmethod
    def _fail(batch: list[tuple[Frame, asyncio.Future[T]]], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)
