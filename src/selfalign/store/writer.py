"""The threads that write a run's file: `Writer` makes the writes, in order, each in a
transaction of its own, so the event loop never waits for SQLite or the disk; `Checkpoints`
copies the write-ahead log into the database, so that neither the loop nor the writer waits
for its fsyncs."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

CHECKPOINT_SECONDS = 0.5  # how often the checkpoint thread copies the log into the database

Job = Callable[[sqlite3.Connection], Any]


class Writer:
    """The one thread that writes a run's file, on a connection of its own: jobs run in the
    order they were submitted, each in one transaction. The first job that fails and that
    nobody waits for (not `awaited`) stops all writing: its error is raised by every later
    `submit`, so the file stays a prefix of the writes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.error: BaseException | None = None
        self._jobs: queue.SimpleQueue[tuple[Job, Future[Any], bool] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="run-store-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job, *, awaited: bool = False) -> "Future[Any]":
        if self.error is not None:
            raise self.error
        future: Future[Any] = Future()
        self._jobs.put((job, future, awaited))
        return future

    def wait(self) -> None:
        """Return once every job submitted so far is committed (raise the writer's error)."""
        self.submit(lambda db: None, awaited=True).result()

    def stop(self) -> None:
        """Finish the jobs queued, then end the thread and close its connection."""
        self._jobs.put(None)
        self._thread.join()
        self.db.close()

    def _run(self) -> None:
        while (entry := self._jobs.get()) is not None:
            job, future, awaited = entry
            if self.error is not None:
                future.set_exception(self.error)
                continue
            try:
                result = self._execute(job)
            except BaseException as exc:  # noqa: BLE001 (handed to its caller, or to the next submit)
                if not awaited:
                    self.error = exc
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _execute(self, job: Job) -> Any:
        self.db.execute("BEGIN")
        try:
            result = job(self.db)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return result


class Checkpoints:
    """A thread that copies the write-ahead log into the database every CHECKPOINT_SECONDS on a
    connection of its own (PASSIVE: it never waits for, nor blocks, the writer)."""

    def __init__(self, path: Path) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(path,), name="sqlite-checkpoints", daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stopped.wait(CHECKPOINT_SECONDS):
                with contextlib.suppress(sqlite3.Error):  # busy or a full disk: the writer reports that
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
