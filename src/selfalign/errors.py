"""Errors a user can fix. The CLI prints their message, without a traceback, and exits 2."""

import errno
import shutil
from pathlib import Path


class UserError(Exception):
    """Bad input, a bad flag or a missing file: the message names it and says how to fix it."""


class InputError(UserError):
    """An input file is unusable; the message names the file, the line and the fix."""


class ItemFailed(Exception):
    """One item cannot be completed (e.g. the model's answer is empty); the runner records the
    reason and goes on with the other items."""


class DiskFull(UserError):
    """The disk under a folder is full: the message names the folder and the space left."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        super().__init__(
            f"{self.folder}: the disk is full ({_free_space(self.folder)}); nothing written so far is lost. "
            "Free some space (or choose an --out on another disk) and rerun the same command to resume"
        )


def is_disk_full(exc: BaseException, folder: str | Path) -> bool:
    """Whether `exc` (or what caused it) is a write that failed for want of space under `folder`.
    Libraries report it their own ways (safetensors, torch.save); the free space decides."""
    while exc is not None:
        text = str(exc)
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in text:
            return True
        if "write" in text.lower() and _free_bytes(Path(folder)) < 16 * 2**20:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _free_bytes(folder: Path) -> int:
    for place in (folder, *folder.parents):
        try:
            return shutil.disk_usage(place).free
        except OSError:
            continue
    return 2**62


def _free_space(folder: Path) -> str:
    for place in (folder, *folder.parents):
        try:
            usage = shutil.disk_usage(place)
        except OSError:
            continue
        return f"{usage.free / 2**20:.1f} MiB free of {usage.total / 2**20:.1f} MiB"
    return "free space unknown"
