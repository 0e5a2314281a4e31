"""One run folder, one SQLite file (WAL): the run's config, its items with status and record,
the cached model calls, and method state that must survive a restart.

Every write is its own transaction, so a process killed at any instant leaves the file
consistent: an item is either done with its record, or not done. Only the event-loop thread
touches the connection.

Cached model calls are written in batches (every `CALL_BATCH` calls or `CALL_FLUSH_SECONDS`),
and always in the same transaction that marks an item done or failed or writes method state:
a kill loses at most the calls of the open batch, never one that a done item was built from.
WAL checkpoints (copying the log into the database, with its fsyncs) run on a thread of their
own, so they never stall the event loop.

One process at a time writes a run folder (an OS lock, see `lock.py`); `open_existing` opens
it for reading, which WAL allows while the writer writes. A full disk raises DiskFull, naming
the folder and the space left, and loses nothing: the write that failed is rolled back.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from selfalign.errors import DiskFull, UserError

from . import lock
from .inputs import Item

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta  (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id      TEXT PRIMARY KEY,
    idx     INTEGER NOT NULL,
    input   TEXT NOT NULL,
    status  TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','done','failed')),
    record  TEXT,
    error   TEXT,
    usage   TEXT,
    tries   INTEGER NOT NULL DEFAULT 0,
    updated REAL
);
CREATE INDEX IF NOT EXISTS items_status ON items(status, idx);
CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS state (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                                  PRIMARY KEY (ns, key));
"""

STORE_FILE = "run.sqlite"


SQLITE_FULL = 13
CALL_BATCH = 256  # cached calls per commit at most
CALL_FLUSH_SECONDS = 1.0  # the oldest unwritten call waits no longer than this (checked on each put)
CHECKPOINT_SECONDS = 0.5  # how often the checkpoint thread copies the log into the database


class _Connection(sqlite3.Connection):
    """A connection whose writes raise DiskFull (naming the run folder) when the disk is full."""

    folder: Path

    def execute(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        with self._full_disk():
            return super().execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        with self._full_disk():
            return super().executemany(*args)

    def executescript(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        with self._full_disk():
            return super().executescript(*args)

    @contextlib.contextmanager
    def _full_disk(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL:
                raise DiskFull(self.folder) from exc
            raise


class RunStore:
    """A run folder's store. `RunStore(folder)` opens it for writing (creating it if needed)
    and holds the folder's lock until `close`: another process is refused at once, or waits
    for it with `wait=True`."""

    def __init__(self, folder: str | Path, *, wait: bool = False, _read_only: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STORE_FILE
        self._lock: str | None = None
        if not _read_only:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock = lock.acquire(self.folder, wait=wait)
        self._calls: dict[str, tuple[str, float]] = {}  # cached calls not yet written
        self._checkpoints: _Checkpoints | None = None
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, factory=_Connection)
        self.db.folder = self.folder
        self.db.execute("PRAGMA busy_timeout=5000")
        if _read_only:
            self.db.execute("PRAGMA query_only=ON")
            return
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills in WAL mode
        self.db.executescript(SCHEMA)
        self.db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it, off the event loop
        self._checkpoints = _Checkpoints(self.path)

    @classmethod
    def open_existing(cls, folder: str | Path) -> "RunStore":
        """An existing run, for reading only: no lock, so it can be read while a run writes it."""
        if not (Path(folder) / STORE_FILE).is_file():
            raise UserError(f"{folder}: not a run folder (no {STORE_FILE}); pass the --out folder of a run")
        return cls(folder, _read_only=True)

    def close(self) -> None:
        """Write the calls kept in memory and release the folder, even when the write fails."""
        try:
            if self._checkpoints is not None:
                self._checkpoints.stop()
                self._checkpoints = None
                self.flush_calls()
        finally:
            self.db.close()
            if self._lock is not None:
                lock.release(self._lock)
                self._lock = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    # --- config ---------------------------------------------------------------------------

    def bind_config(self, method: str, config: dict[str, Any]) -> None:
        """Record the run's method and config; refuse to resume a folder made with other settings."""
        wanted = json.dumps({"method": method, "config": config}, sort_keys=True)
        row = self.db.execute("SELECT value FROM meta WHERE key='run'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('run', ?)", (wanted,))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (str(time.time()),))
        elif row[0] != wanted:
            old = json.loads(row[0])
            diff = _diff(old, json.loads(wanted))
            raise UserError(
                f"{self.folder} holds a run made with other settings ({diff}); "
                "rerun with the same options to resume, or choose a new --out folder"
            )

    def run_info(self) -> dict[str, Any]:
        row = self.db.execute("SELECT value FROM meta WHERE key='run'").fetchone()
        return json.loads(row[0]) if row else {}

    # --- items ----------------------------------------------------------------------------

    def add_items(self, items: list[Item]) -> int:
        """Insert items not yet in the run (by id); refuse ones whose content changed."""
        added = 0
        with self._transaction():
            for item in items:
                payload = json.dumps(item.to_json(), sort_keys=True)
                row = self.db.execute("SELECT input FROM items WHERE id=?", (item.id,)).fetchone()
                if row is None:
                    self.db.execute("INSERT INTO items (id, idx, input) VALUES (?,?,?)", (item.id, item.idx, payload))
                    added += 1
                elif row[0] != payload:
                    raise UserError(
                        f"{self.folder}: input item {item.id} differs from the one this run started with; "
                        "the input file changed. Restore it, or choose a new --out folder"
                    )
        return added

    def reopen_unfinished(self, retry_failed: bool = True, ids: list[str] | None = None) -> None:
        """Items left 'running' by a killed process (and failed ones, if asked) become pending;
        only those in `ids` when given."""
        statuses = ("running", "failed") if retry_failed else ("running",)
        marks = ",".join("?" * len(statuses))
        if ids is None:
            self.db.execute(f"UPDATE items SET status='pending' WHERE status IN ({marks})", statuses)
            return
        with self._transaction():
            self.db.executemany(
                f"UPDATE items SET status='pending' WHERE id=? AND status IN ({marks})",
                [(item_id, *statuses) for item_id in ids],
            )

    def reopen_done(self, ids: list[str]) -> None:
        """Done items in `ids` become pending, to be run again (their model calls stay cached, so
        what a changed scorer needs is the only new work)."""
        with self._transaction():
            self.db.executemany("UPDATE items SET status='pending' WHERE id=? AND status='done'", [(i,) for i in ids])

    def pending(self, ids: list[str] | None = None) -> list[Item]:
        """Pending items in input order; only those in `ids` when given."""
        rows = self.db.execute("SELECT id, input FROM items WHERE status='pending' ORDER BY idx").fetchall()
        keep = None if ids is None else set(ids)
        return [Item.from_json(json.loads(inp)) for item_id, inp in rows if keep is None or item_id in keep]

    def mark_running(self, item_id: str) -> None:
        self.db.execute(
            "UPDATE items SET status='running', tries=tries+1, updated=? WHERE id=?", (time.time(), item_id)
        )

    def mark_done(self, item_id: str, record: dict[str, Any], usage: dict[str, int]) -> None:
        """The item's record, written together with the cached calls not yet written (its own among them)."""
        with self._transaction_with_calls():
            self.db.execute(
                "UPDATE items SET status='done', record=?, error=NULL, usage=?, updated=? WHERE id=?",
                (json.dumps(record), json.dumps(usage), time.time(), item_id),
            )

    def mark_failed(self, item_id: str, reason: str, usage: dict[str, int]) -> None:
        with self._transaction_with_calls():
            self.db.execute(
                "UPDATE items SET status='failed', error=?, usage=?, updated=? WHERE id=?",
                (reason, json.dumps(usage), time.time(), item_id),
            )

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "running": 0, "done": 0, "failed": 0}
        for status, n in self.db.execute("SELECT status, COUNT(*) FROM items GROUP BY status"):
            counts[status] = n
        return counts

    def done_records(self) -> Iterator[tuple[Item, dict[str, Any]]]:
        rows = self.db.execute("SELECT input, record FROM items WHERE status='done' ORDER BY idx")
        for inp, rec in rows.fetchall():
            yield Item.from_json(json.loads(inp)), json.loads(rec)

    def item_rows(self) -> list[dict[str, Any]]:
        """Every item in input order, whatever its status: id, input, status, record (or None),
        error, usage, tries and the time of its last change (for reports)."""
        rows = self.db.execute(
            "SELECT id, input, status, record, error, usage, tries, updated FROM items ORDER BY idx"
        ).fetchall()
        return [
            {"id": i, "input": json.loads(inp), "status": status, "record": json.loads(rec) if rec else None,
             "error": error, "usage": json.loads(usage) if usage else {}, "tries": tries, "updated": updated}
            for i, inp, status, rec, error, usage, tries, updated in rows
        ]

    def created(self) -> float | None:
        """When the run's config was first bound (its start), as a Unix time."""
        row = self.db.execute("SELECT value FROM meta WHERE key='created'").fetchone()
        return float(row[0]) if row else None

    def failures(self) -> list[tuple[str, str]]:
        return self.db.execute("SELECT id, error FROM items WHERE status='failed' ORDER BY idx").fetchall()

    def usage_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (usage,) in self.db.execute("SELECT usage FROM items WHERE usage IS NOT NULL"):
            for key, value in json.loads(usage).items():
                totals[key] = totals.get(key, 0) + value
        return totals

    # --- the call cache (selfalign.llm.model.CallCache) -----------------------------------

    def get_call(self, key: str) -> dict[str, Any] | None:
        if key in self._calls:
            return json.loads(self._calls[key][0])
        row = self.db.execute("SELECT value FROM calls WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_call(self, key: str, value: dict[str, Any]) -> None:
        """Kept in memory until the batch is full or old enough, or an item is marked done."""
        self._calls[key] = (json.dumps(value), time.time())
        oldest = next(iter(self._calls.values()))[1]
        if len(self._calls) >= CALL_BATCH or time.time() - oldest >= CALL_FLUSH_SECONDS:
            self.flush_calls()

    def flush_calls(self) -> None:
        """Write the cached calls kept in memory, in one transaction."""
        if self._calls:
            with self._transaction_with_calls():
                pass

    @contextlib.contextmanager
    def _transaction_with_calls(self) -> Iterator[None]:
        """A transaction that also writes the cached calls kept in memory; they are dropped
        from memory only once committed, so a failed write (a full disk) keeps them."""
        with self._transaction():
            rows = [(key, value, created) for key, (value, created) in self._calls.items()]
            self.db.executemany("INSERT OR REPLACE INTO calls VALUES (?,?,?)", rows)
            yield
        self._calls.clear()

    def call_count(self) -> int:
        """Cached calls (the batch kept in memory is written first)."""
        self.flush_calls()
        return self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    # --- method state that must survive a restart (e.g. agents' memories) ------------------

    def put_state(self, ns: str, key: str, value: Any) -> None:
        with self._transaction_with_calls():
            self.db.execute("INSERT OR REPLACE INTO state VALUES (?,?,?)", (ns, key, json.dumps(value)))

    def get_state(self, ns: str, key: str) -> Any | None:
        row = self.db.execute("SELECT value FROM state WHERE ns=? AND key=?", (ns, key)).fetchone()
        return json.loads(row[0]) if row else None

    def state_items(self, ns: str) -> list[tuple[str, Any]]:
        rows = self.db.execute("SELECT key, value FROM state WHERE ns=? ORDER BY key", (ns,)).fetchall()
        return [(k, json.loads(v)) for k, v in rows]


class _Checkpoints:
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


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("method") != new.get("method"):
        return f"method {old.get('method')!r}, now {new.get('method')!r}"
    keys = sorted(set(old["config"]) | set(new["config"]))
    changed = [k for k in keys if old["config"].get(k) != new["config"].get(k)]
    return ", ".join(f"{k}: {old['config'].get(k)!r} -> {new['config'].get(k)!r}" for k in changed[:3])
