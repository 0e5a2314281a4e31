"""One writer per run folder: an exclusive `flock` on `run.lock` inside the folder.

The OS releases the lock when the process that holds it dies, however it dies, so a killed run
never leaves a stale lock behind. Readers (`export`) take no lock: SQLite's WAL mode lets them
read while the writer writes. Within one process the lock is shared (counted), so code that
opens the same run twice in one process does not lock itself out.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import threading
from pathlib import Path

from selfalign.errors import UserError

LOCK_FILE = "run.lock"

_held: dict[str, list[int]] = {}  # real path of the folder -> [fd, how many holders here]
_guard = threading.Lock()


class RunLocked(UserError):
    """Another process writes this run folder."""


def acquire(folder: Path, *, wait: bool = False) -> str:
    """Lock `folder` for this process (waiting for the holder to finish when `wait`); returns
    the key to `release` it with. Raises RunLocked at once when another process holds it."""
    key = os.path.realpath(folder)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return key
        fd = _open(Path(key) / LOCK_FILE, folder)
        try:
            _lock(fd, folder, wait)
        except BaseException:
            os.close(fd)
            raise
        try:  # who holds it, for the message another process prints; not needed for the lock
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        _held[key] = [fd, 1]
        return key


def release(key: str) -> None:
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            os.close(entry[0])  # closing the descriptor drops the flock


def _open(path: Path, folder: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        raise UserError(
            f"{folder}: cannot write this run folder ({exc.strerror}); a run writes its folder. "
            "`selfalign export` and `selfalign report` read it as it is; to run or resume it, copy the "
            "folder somewhere writable and pass the copy as --out"
        ) from exc


def _lock(fd: int, folder: Path, wait: bool) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        holder = _holder(fd)
    if not wait:
        raise RunLocked(
            f"{folder} is being written by another selfalign process ({holder}); one process at a "
            "time writes a run folder. Wait for it to end (or pass --wait), stop it, or choose another --out"
        )
    print(f"waiting for {holder} to finish with {folder} ...", file=sys.stderr, flush=True)
    fcntl.flock(fd, fcntl.LOCK_EX)


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "pid unknown"
