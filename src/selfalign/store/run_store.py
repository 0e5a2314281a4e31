"""One run folder, one SQLite file (WAL): the run's config, its items with status and record,
the cached model calls, and method state that must survive a restart.

Writes are queued to one writer thread (`writer.Writer`) that makes them in order, each in a
transaction of its own, so the event loop never waits for SQLite or the disk, and the file
always holds a prefix of the writes: a process killed at any instant leaves it consistent, an
item either done with its record or not done. Reads see every write made before them: a cached
call is served from memory until it is written; other reads wait for the queue to empty.

Cached model calls are handed to the writer in batches (every `CALL_BATCH` calls or
`CALL_FLUSH_SECONDS`), and always in the transaction of the next write (an item marked running,
done or failed, method state), so an item is never done on disk before the calls it was built
from: a kill loses at most calls not yet written, never one that a done item needs. WAL
checkpoints (copying the log into the database, with its fsyncs) run on a thread of their own,
so they hold up neither the event loop nor the writer.

One process at a time writes a run folder (an OS lock, see `lock.py`); `open_existing` opens
it for reading, which WAL allows while the writer writes, and which needs no lock and no write
permission. A damaged file stops with CorruptStore (see `sqlite.py`). A full disk raises DiskFull, naming
the folder and the space left, and loses nothing: the write that failed is rolled back and no
later one is made; a queued write has no caller, so its error is raised by the store's next call.
"""

from __future__ import annotations

import json
import sqlite3
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel

from selfalign.errors import UserError
from selfalign.redact import redact

from . import lock
from .inputs import Item
from .sqlite import STORE_FILE, check_header, connect, connect_read_only, explained, quick_check
from .writer import Checkpoints, Job, Writer

__all__ = ["CALL_BATCH", "CALL_FLUSH_SECONDS", "STORE_FILE", "RunStore"]

CALL_BATCH = 256  # cached calls handed to the writer at once, at most
CALL_FLUSH_SECONDS = 1.0  # the oldest unwritten call waits no longer than this (checked on each put)


class RunStore:
    """A run folder's store. `RunStore(folder)` opens it for writing (creating it if needed)
    and holds the folder's lock until `close`: another process is refused at once, or waits
    for it with `wait=True`."""

    def __init__(self, folder: str | Path, *, wait: bool = False, _read_only: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STORE_FILE
        self._lock: str | None = None
        self._writer: Writer | None = None
        self._checkpoints: Checkpoints | None = None
        self._calls: dict[str, tuple[str, float]] = {}  # cached calls not yet handed to the writer
        self._writing: dict[str, tuple[str, float]] = {}  # handed to the writer, not yet committed
        if _read_only:
            self.db = connect_read_only(self.folder)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        check_header(self.folder)  # a damaged file stops here, before the folder is touched
        self._lock = lock.acquire(self.folder, wait=wait)
        try:
            self._writer = Writer(connect(self.folder, writer=True))
            self.db = connect(self.folder, writer=False)  # reads, on the caller's thread
            quick_check(self.db, self.folder)  # damage anywhere stops the run before its first write
        except BaseException:
            if hasattr(self, "db"):
                self.db.close()
            if self._writer is not None:
                self._writer.stop()
            lock.release(self._lock)
            raise
        self._checkpoints = Checkpoints(self.path)

    @classmethod
    def open_existing(cls, folder: str | Path) -> "RunStore":
        """An existing run, for reading only: no lock, so it can be read while a run writes it,
        and from a folder this process cannot write."""
        if not (Path(folder) / STORE_FILE).is_file():
            raise UserError(f"{folder}: not a run folder (no {STORE_FILE}); pass the --out folder of a run")
        return cls(folder, _read_only=True)

    def close(self) -> None:
        """Write everything queued and the calls kept in memory, and release the folder, even
        when the write fails."""
        try:
            if self._writer is not None:
                self._write(awaited=True).result()
        finally:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None
            if self._checkpoints is not None:
                self._checkpoints.stop()
                self._checkpoints = None
            self.db.close()
            if self._lock is not None:
                lock.release(self._lock)
                self._lock = None

    def _write(self, job: Job | None = None, *, awaited: bool = False) -> "Future[Any]":
        """Queue a transaction: the cached calls not yet handed over, then `job`; its future
        holds what `job` returns, once committed. `awaited`: the caller waits for the future
        and takes its error (a write nobody waits for stops all writing when it fails)."""
        calls, self._calls = self._calls, {}
        self._writing.update(calls)
        rows = [(key, value, created) for key, (value, created) in calls.items()]

        def transaction(db: sqlite3.Connection) -> Any:
            if rows:
                db.executemany("INSERT OR REPLACE INTO calls VALUES (?,?,?)", rows)
            return job(db) if job is not None else None

        future = self._writer.submit(transaction, awaited=awaited)  # type: ignore[union-attr]
        if calls:
            future.add_done_callback(lambda done: done.exception() or self._written(calls))
        return future

    def _queue(self, sql: str, params: Any = (), *, many: bool = False) -> None:
        """Queue one statement (for each of `params` when `many`), with the calls kept in memory."""
        self._write(lambda db: db.executemany(sql, params) if many else db.execute(sql, params))

    def _written(self, calls: dict[str, tuple[str, float]]) -> None:
        """Committed calls are read from the file from now on (runs on the writer thread)."""
        for key in calls:
            self._writing.pop(key, None)

    def sync(self) -> None:
        """Return once every write made so far is in the file (raising a failed write's error)."""
        if self._writer is not None:
            self._writer.wait()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows as of every write made so far."""
        self.sync()
        with explained(self.folder):
            return self.db.execute(sql, params).fetchall()

    # --- config ---------------------------------------------------------------------------

    def bind_config(self, method: str, config: dict[str, Any]) -> None:
        """Record the run's method and config; refuse to resume a folder made with other settings."""
        wanted = json.dumps({"method": method, "config": config}, sort_keys=True)

        def bind(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT value FROM meta WHERE key='run'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('run', ?)", (wanted,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (str(time.time()),))
            elif row[0] != wanted:
                raise self._other_settings(json.loads(row[0]), json.loads(wanted))

        self._write(bind, awaited=True).result()

    def check_config(self, method: str, config: dict[str, Any]) -> None:
        """Refuse a folder made with other settings now, before a model loads for nothing
        (`bind_config` records the settings once the model has loaded)."""
        saved, wanted = self.run_info(), {"method": method, "config": config}
        if saved and json.dumps(saved, sort_keys=True) != json.dumps(wanted, sort_keys=True):
            raise self._other_settings(saved, json.loads(json.dumps(wanted)))

    def _other_settings(self, saved: dict[str, Any], wanted: dict[str, Any]) -> UserError:
        return UserError(
            f"{self.folder} holds a run made with other settings ({_diff(saved, wanted)}); "
            "rerun with the same options to resume, or choose a new --out folder"
        )

    def run_info(self) -> dict[str, Any]:
        rows = self._read("SELECT value FROM meta WHERE key='run'")
        return json.loads(rows[0][0]) if rows else {}

    # --- items ----------------------------------------------------------------------------

    def add_items(self, items: list[Item]) -> int:
        """Insert items not yet in the run (by id); refuse ones whose content changed."""
        return self.queue_items(items).result()

    def queue_items(self, items: list[Item]) -> "Future[int]":
        """`add_items` as one queued transaction; the future holds the number added, or the
        error. Every item is inserted unless its id is there; only when some were there (a
        resumed run) are the stored ones read back and compared."""

        def add(db: sqlite3.Connection) -> int:
            payloads = {item.id: (item.id, item.idx, _payload(item)) for item in items}
            added = db.executemany("INSERT OR IGNORE INTO items (id, idx, input) VALUES (?,?,?)", payloads.values()).rowcount
            if added < len(payloads):
                ids = json.dumps(list(payloads))
                for item_id, stored in db.execute(f"SELECT id, input FROM items WHERE id IN {_IDS}", (ids,)):
                    if stored != payloads[item_id][2]:
                        raise UserError(
                            f"{self.folder}: input item {item_id} differs from the one this run started with; "
                            "the input file changed. Restore it, or choose a new --out folder"
                        )
            return added

        return self._write(add, awaited=True)

    def reopen_unfinished(self, retry_failed: bool = True, ids: list[str] | None = None) -> None:
        """Items left 'running' by a killed process (and failed ones, if asked) become pending;
        only those in `ids` when given."""
        statuses = ("running", "failed") if retry_failed else ("running",)
        marks = ",".join("?" * len(statuses))
        if ids is None:
            self._queue(f"UPDATE items SET status='pending' WHERE status IN ({marks})", statuses)
        else:
            self._queue(f"UPDATE items SET status='pending' WHERE id IN {_IDS} AND status IN ({marks})", (json.dumps(ids), *statuses))

    def reopen_done(self, ids: list[str]) -> None:
        """Done items in `ids` become pending, to be run again (their model calls stay cached, so
        what a changed scorer needs is the only new work)."""
        self._queue("UPDATE items SET status='pending' WHERE id=? AND status='done'", [(i,) for i in ids], many=True)

    def pending(self, ids: list[str] | None = None) -> list[Item]:
        """Pending items in input order; only those in `ids` when given."""
        if ids is None:
            rows = self._read("SELECT input FROM items WHERE status='pending' ORDER BY idx")
        else:
            rows = self._read(f"SELECT input FROM items WHERE id IN {_IDS} AND status='pending' ORDER BY idx", (json.dumps(ids),))
        return [Item.from_json(json.loads(inp)) for (inp,) in rows]

    def mark_running(self, item_id: str) -> None:
        self._queue("UPDATE items SET status='running', tries=tries+1, updated=? WHERE id=?", (time.time(), item_id))

    def mark_done(self, item_id: str, record: dict[str, Any] | BaseModel, usage: dict[str, int]) -> None:
        """The item's record, written together with the cached calls not yet written (its own among them).
        A pydantic record is encoded by pydantic's own serializer: a MATRIX record (300 KB) in 0.8 ms
        vs 3.8 ms through model_dump + json.dumps, time the event loop would stand still."""
        encoded = record.model_dump_json() if isinstance(record, BaseModel) else json.dumps(record)
        self._queue(
            "UPDATE items SET status='done', record=?, error=NULL, usage=?, updated=? WHERE id=?",
            (encoded, json.dumps(usage), time.time(), item_id),
        )

    def mark_failed(self, item_id: str, reason: str, usage: dict[str, int]) -> None:
        """The item's failure; secrets in `reason` (an API key quoted by a server) are redacted."""
        reason = redact(reason)
        self._queue(
            "UPDATE items SET status='failed', error=?, usage=?, updated=? WHERE id=?",
            (reason, json.dumps(usage), time.time(), item_id),
        )

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "running": 0, "done": 0, "failed": 0}
        for status, n in self._read("SELECT status, COUNT(*) FROM items GROUP BY status"):
            counts[status] = n
        return counts

    def done_records(self) -> Iterator[tuple[Item, dict[str, Any]]]:
        for inp, rec in self._read("SELECT input, record FROM items WHERE status='done' ORDER BY idx"):
            yield Item.from_json(json.loads(inp)), json.loads(rec)

    def item_rows(self) -> list[dict[str, Any]]:
        """Every item in input order, whatever its status: id, input, status, record (or None),
        error, usage, tries and the time of its last change (for reports)."""
        rows = self._read("SELECT id, input, status, record, error, usage, tries, updated FROM items ORDER BY idx")
        return [
            {"id": i, "input": json.loads(inp), "status": status, "record": json.loads(rec) if rec else None,
             "error": error, "usage": json.loads(usage) if usage else {}, "tries": tries, "updated": updated}
            for i, inp, status, rec, error, usage, tries, updated in rows
        ]

    def created(self) -> float | None:
        """When the run's config was first bound (its start), as a Unix time."""
        rows = self._read("SELECT value FROM meta WHERE key='created'")
        return float(rows[0][0]) if rows else None

    def failures(self) -> list[tuple[str, str]]:
        return self._read("SELECT id, error FROM items WHERE status='failed' ORDER BY idx")

    def usage_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (usage,) in self._read("SELECT usage FROM items WHERE usage IS NOT NULL"):
            for key, value in json.loads(usage).items():
                totals[key] = totals.get(key, 0) + value
        return totals

    # --- the call cache (selfalign.llm.model.CallCache) -----------------------------------

    def get_call(self, key: str) -> dict[str, Any] | None:
        """A cached call: from memory while it is not yet written (checked before the file, as
        the writer forgets a call only once it is committed), else from the file."""
        unwritten = self._calls.get(key) or self._writing.get(key)
        if unwritten is not None:
            return json.loads(unwritten[0])
        with explained(self.folder):
            row = self.db.execute("SELECT value FROM calls WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_call(self, key: str, value: dict[str, Any]) -> None:
        """Kept in memory until the batch is full or old enough, or the next write."""
        self._calls[key] = (json.dumps(value), time.time())
        oldest = next(iter(self._calls.values()))[1]
        if len(self._calls) >= CALL_BATCH or time.time() - oldest >= CALL_FLUSH_SECONDS:
            self.flush_calls()

    def flush_calls(self) -> None:
        """Hand the cached calls kept in memory to the writer, as one transaction."""
        if self._calls:
            self._write()

    def call_count(self) -> int:
        """Cached calls (those kept in memory are written first)."""
        self.flush_calls()
        return self._read("SELECT COUNT(*) FROM calls")[0][0]

    # --- method state that must survive a restart (e.g. agents' memories) ------------------

    def put_state(self, ns: str, key: str, value: Any) -> None:
        self._queue("INSERT OR REPLACE INTO state VALUES (?,?,?)", (ns, key, json.dumps(value)))

    def get_state(self, ns: str, key: str) -> Any | None:
        rows = self._read("SELECT value FROM state WHERE ns=? AND key=?", (ns, key))
        return json.loads(rows[0][0]) if rows else None

    def state_items(self, ns: str) -> list[tuple[str, Any]]:
        rows = self._read("SELECT key, value FROM state WHERE ns=? ORDER BY key", (ns,))
        return [(k, json.loads(v)) for k, v in rows]


_IDS = "(SELECT value FROM json_each(?))"  # the ids of a JSON array bound to the statement


def _payload(item: Item) -> str:
    """An item as the store keeps it (and compares it on resume)."""
    return json.dumps(item.to_json(), sort_keys=True)


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("method") != new.get("method"):
        return f"method {old.get('method')!r}, now {new.get('method')!r}"
    keys = sorted(set(old["config"]) | set(new["config"]))
    # compared as JSON, as the settings are stored: Python's == takes 1 for 1.0 and for True
    changed = [k for k in keys if _as_json(old["config"].get(k)) != _as_json(new["config"].get(k))]
    return ", ".join(f"{k}: {old['config'].get(k)!r} -> {new['config'].get(k)!r}" for k in changed[:3])


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
