"""Issued cards written behind the response: one thread per process, a batch per transaction.

Why not inline: with several workers on one SQLite file, a commit that meets another worker's write
lock waits in SQLite's busy handler, which sleeps 1 ms and more, and inline that wait stalled the
worker's whole event loop (measured: two workers served 705 calls/s, no more than one; 1,593 with no
contention). Why not a thread hand-off per call: the call then waited on the thread, and the GIL
ping-pong cost more than the write. Here the event loop only queues the cards; the writer thread
wakes at most every ``gather`` seconds (50 ms), writes what it finds in one transaction, and waits
on locks without the GIL.

Nothing is dropped silently: ``close`` (at shutdown) writes everything queued; a failed write is
retried once, then logged at ERROR with the count of cards and counted in ``/metrics``. Only a process
killed outright loses the cards still queued: those of its last ``gather`` interval.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from .feedback_store import FeedbackStore, IssuedCard
from .metrics import ISSUED_WRITE_FAILURES

log = logging.getLogger("cds_service")

_STOP = object()


class IssuedWriter:
    """Queues issued cards and records them in ``store`` from a background thread."""

    def __init__(
        self, store: FeedbackStore, *, gather: float = 0.05, max_batch: int = 1000, retry_after: float = 0.5
    ) -> None:
        self._store = store
        self._gather = gather
        self._max_batch = max_batch
        self._retry_after = retry_after
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="issued-card-writer", daemon=True)
        self._thread.start()

    def submit(self, cards: Sequence[IssuedCard]) -> None:
        """Queue ``cards`` for recording (returns at once)."""
        if cards:
            self._queue.put(list(cards))

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued before this call is recorded (or given up on)."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise TimeoutError(f"issued cards not written within {timeout:.0f} s")

    def close(self, timeout: float = 30.0) -> None:
        """Record everything queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if isinstance(item, list):
                # Let a batch gather: one wake-up and one transaction per interval, not per call; a
                # thread woken per call fought the event loop for the GIL and halved throughput.
                time.sleep(self._gather)
            batch: list[IssuedCard] = []
            waiting: list[threading.Event] = []
            while True:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                elif isinstance(item, list):
                    batch.extend(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            for start in range(0, len(batch), self._max_batch):
                self._write(batch[start : start + self._max_batch])
            for event in waiting:
                event.set()

    def _write(self, batch: list[IssuedCard]) -> None:
        for attempt in (1, 2):
            try:
                self._store.record_issued(batch)
                return
            except Exception as exc:  # any store failure: retried, then logged and counted
                if attempt == 1:
                    time.sleep(self._retry_after)
                    continue
                ISSUED_WRITE_FAILURES.inc(len(batch))
                log.error("issued cards not recorded: count=%d error=%s", len(batch), type(exc).__name__)
