"""The run store's file: its tables, and connections to it that turn SQLite's errors into ones
a user can act on.

- A full disk raises DiskFull (the folder and the space left).
- A damaged file (truncated, its header overwritten, not a database at all, pages
  overwritten) raises CorruptStore: the file, what is wrong, and what to do (move it aside
  and rerun); the file itself is left as it is. A writer checks the whole file when it opens
  it (`quick_check`), so a run never writes into a damaged store; a reader stops at the first
  damage it reads.
- A folder that cannot be written (a read-only disk, a copy without write permission) can still
  be read: `connect_read_only` opens the file read-only, and immutable where SQLite cannot make
  its shared-memory file beside it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from selfalign.errors import DiskFull, UserError

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

SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 11, 13, 26


class CorruptStore(UserError):
    """A run's file is damaged or not a database; the message says what to do."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        super().__init__(
            f"{path}: the run store is damaged ({what}); nothing was changed. Move it aside "
            f"(mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.damaged')}) and rerun the command that made the run to start it "
            "again, or restore the folder from a copy"
        )


def sqlite_error(exc: sqlite3.Error, folder: Path) -> Exception:
    """What to raise for SQLite's `exc` on the store in `folder`: DiskFull, CorruptStore, or `exc`."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        code &= 0xFF  # the primary code of an extended one
    if code == SQLITE_FULL:
        return DiskFull(folder)
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB) or "malformed" in str(exc) or "not a database" in str(exc):
        return CorruptStore(folder / STORE_FILE, str(exc))
    return exc


@contextlib.contextmanager
def explained(folder: Path) -> Iterator[None]:
    """Raise SQLite's errors on the store in `folder` as `sqlite_error` says."""
    try:
        yield
    except sqlite3.Error as exc:
        raised = sqlite_error(exc, folder)
        if raised is exc:
            raise
        raise raised from exc


class Connection(sqlite3.Connection):
    """A connection whose errors are `explained` (DiskFull, CorruptStore)."""

    folder: Path

    def execute(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        with explained(self.folder):
            return super().execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        with explained(self.folder):
            return super().executemany(*args)

    def executescript(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        with explained(self.folder):
            return super().executescript(*args)


def check_header(folder: Path) -> None:
    """Raise CorruptStore when the store's first bytes show damage SQLite might read past: not
    SQLite's header (overwritten), or fewer bytes than its header counts (truncated). A file
    with a write-ahead log beside it is left to SQLite: the log may hold the missing pages."""
    path = folder / STORE_FILE
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(100)
    except FileNotFoundError:
        return
    if size == 0:
        return  # a new store, made when its writer opens it
    if size < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise CorruptStore(path, "its first bytes are not an SQLite header: overwritten, or not a run store")
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages, changes, valid_for = (int.from_bytes(header[i:i + 4], "big") for i in (28, 24, 92))
    if changes == valid_for and pages * page_size > size:
        raise CorruptStore(path, f"truncated: {size:,} bytes of the {pages * page_size:,} its header counts")


def quick_check(db: sqlite3.Connection, folder: Path) -> None:
    """Raise CorruptStore unless SQLite's quick check of every page passes (it reads the whole
    file once: about a second per GB)."""
    with explained(folder):
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)").fetchall()]
    if problems != ["ok"]:
        raise CorruptStore(folder / STORE_FILE, "; ".join(problems))


def connect(folder: Path, *, writer: bool) -> Connection:
    """A connection to the store in `folder`; the writer's sets WAL mode and makes the tables."""
    db = sqlite3.connect(folder / STORE_FILE, isolation_level=None, check_same_thread=False, factory=Connection)
    db.folder = folder
    try:
        db.execute("PRAGMA busy_timeout=5000")
        if writer:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills in WAL mode
            db.executescript(SCHEMA)
            db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it
        else:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # a damaged header shows here
    except BaseException:
        db.close()
        raise
    return db


def connect_read_only(folder: Path) -> Connection:
    """A read-only connection to the store in `folder`, which need not be writable: in a folder
    that cannot be written, opened `mode=ro`, or `immutable` when SQLite cannot make its
    shared-memory file there (a folder that holds no write-ahead log, as a run leaves it once
    closed)."""
    path = folder / STORE_FILE
    check_header(folder)
    if os.access(folder, os.W_OK) and os.access(path, os.W_OK):
        # A connection that could write (but is told not to) is the last to close like any
        # other: it folds the write-ahead log back and leaves no -wal or -shm file behind.
        db = connect(folder, writer=False)
        db.execute("PRAGMA query_only=ON")
        return db
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        return _open_uri(uri, folder)
    except CorruptStore:
        raise
    except sqlite3.OperationalError as exc:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise UserError(
                f"{path}: cannot be read here ({exc}): its write-ahead log ({wal.name}) holds writes that a "
                "read-only folder cannot apply. Copy the folder somewhere writable and read the copy"
            ) from exc
        return _open_uri(uri + "&immutable=1", folder)


def _open_uri(uri: str, folder: Path) -> Connection:
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, factory=Connection)
    db.folder = folder
    try:
        db.execute("PRAGMA query_only=ON")
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except BaseException:
        db.close()
        raise
    return db
