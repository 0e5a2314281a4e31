"""Errors a user can fix. The CLI prints their message, without a traceback, and exits 2."""


class UserError(Exception):
    """Bad input, a bad flag or a missing file: the message names it and says how to fix it."""


class InputError(UserError):
    """An input file is unusable; the message names the file, the line and the fix."""


class ItemFailed(Exception):
    """One item cannot be completed (e.g. the model's answer is empty); the runner records the
    reason and goes on with the other items."""
