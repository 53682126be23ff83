"""Errors a user can fix: one base class, so ``scalpel``'s command line prints each as one message (exit status 2)
while every other exception stays a bug with its traceback. Library modules raise these and never import the CLI.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


class ConfigError(UserError, ValueError):
    """A configuration problem, phrased for the person who wrote the file."""


class WorldError(UserError, ValueError):
    """A world directory that cannot be used (missing, foreign, or incomplete)."""


class CheckpointError(UserError):
    """A checkpoint directory that cannot be used (missing, pickle-only, malformed, incompatible)."""


class DataError(UserError):
    """A data source that cannot be read: missing file, wrong schema, unreachable hub."""
