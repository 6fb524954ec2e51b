"""Micro-batching: questions that arrive within a few milliseconds share one pass of the reader."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, Generic, Sequence, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class QueueFull(Exception):
    """The queue of waiting questions is full (or the batcher is closing): the caller should retry later."""


class MicroBatcher(Generic[T, R]):
    """Runs ``work(items) -> results`` on batches of items submitted from many threads.

    One worker thread takes the first waiting item, then waits at most
    ``max_wait_s`` for more, up to ``max_batch`` items, and runs them as one
    batch. At most ``max_queue`` items wait; :meth:`submit` raises
    :class:`QueueFull` beyond that instead of growing memory.
    ``max_batch=1`` reads one item at a time.
    """

    def __init__(
        self,
        work: Callable[[Sequence[T]], list[R]],
        max_batch: int = 8,
        max_wait_s: float = 0.005,
        max_queue: int = 64,
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be at least 1 and max_wait_s at least 0")
        self.work = work
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[T, Future] | None] = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ragqa-reader-batches", daemon=True)
        self._thread.start()
        self.batches = 0  # how many batches ran, and how many items they held (for /info)
        self.items = 0

    def submit(self, item: T) -> Future:
        """Queue ``item``; the future holds its result (or the batch's error). Cancel it to have it skipped."""
        if self._closed:  # nothing would read it: the worker stops after the items already queued
            raise QueueFull
        future: Future = Future()
        try:
            self._queue.put_nowait((item, future))
        except queue.Full:
            raise QueueFull from None
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Finish the items already queued, then stop the worker; later :meth:`submit` calls raise QueueFull."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            stop = False
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[tuple[T, Future]]) -> None:
        batch = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        if not batch:  # every caller gave up waiting
            return
        items = [item for item, _ in batch]
        try:
            results = self.work(items)
        except Exception as exc:  # every waiting request hears of it
            logger.exception("a batch of %d questions failed", len(items))
            for _, future in batch:
                future.set_exception(exc)
            return
        self.batches += 1
        self.items += len(items)
        for (_, future), result in zip(batch, results):
            future.set_result(result)
