"""Errors a user can cause and fix. The CLI turns every one into exit code 2 and one line."""

from __future__ import annotations


class EnsPruneError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class SpecError(EnsPruneError):
    """A malformed or contradictory study spec or option value."""


class UnknownNameError(SpecError):
    """A registry lookup for a name that is not registered (a kind of bad option value)."""


class DataError(EnsPruneError):
    """A missing, corrupt or mis-shaped dataset file."""


class PredictionError(EnsPruneError):
    """Predictions that are NaN, misshaped, out of range or too few."""


class CheckpointError(EnsPruneError):
    """A checkpoint that cannot be read or does not describe a known model."""


class RunDirError(EnsPruneError):
    """A run directory that cannot be used as asked (e.g. it holds another run's results)."""


class StorageError(EnsPruneError):
    """An Optuna storage URL that is malformed or cannot be reached."""
