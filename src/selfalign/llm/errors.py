"""Errors of the model layer. Each says what went wrong and, where it can, what to do."""


class ModelError(Exception):
    """A model call failed for good (after retries, or for a reason retrying cannot fix)."""


class TransientError(ModelError):
    """A failure worth retrying: rate limit, server error, timeout, lost connection."""


class SchemaError(ModelError):
    """The model never produced an object valid under the requested schema."""


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message carries the install command."""
