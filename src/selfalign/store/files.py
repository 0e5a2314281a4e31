"""Files written whole or not at all: written under a temporary name beside the target, then
renamed over it (atomic on one filesystem). A failed write (a full disk, a kill) leaves the old
file as it was; the temporary is removed on failure and never mistaken for output."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

from selfalign.errors import DiskFull, UserError


@contextlib.contextmanager
def atomic_target(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write `target` at (a file or a folder); on success it replaces
    `target`, on failure it is removed and a full disk is reported as DiskFull."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
    except OSError as exc:
        raise _unwritable(target, exc) from exc
    try:
        yield tmp
        if tmp.is_dir() and target.is_dir():  # folders cannot be renamed over each other
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            _remove(old)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        _remove(tmp)
        if exc.errno == errno.ENOSPC:
            raise DiskFull(target.parent) from exc
        raise _unwritable(target, exc) from exc
    except BaseException:
        _remove(tmp)
        raise


def _unwritable(target: Path, exc: OSError) -> Exception:
    """A UserError for a place this process may not write (a read-only disk, no permission)."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return UserError(f"{target}: cannot write there ({exc.strerror}); choose a writable place (--out, --to)")
    return exc


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_target(target) as tmp:
        tmp.write_text(text, "utf-8")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
