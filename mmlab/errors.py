"""The one exception family of mmlab.

Every error mmlab raises on purpose is an :class:`MMLabError`, so a notebook or a
script can catch the project's errors without catching a library's bugs. The message
always names the thing at fault (a file, a stream, a notebook cell) and what is wrong
with it.
"""

from __future__ import annotations


class MMLabError(Exception):
    """Base class of every error mmlab raises on purpose."""


class SchemaError(MMLabError, ValueError):
    """A Stream, Recording or Cohort breaks the schema (shape, rate, timestamps, labels)."""


class DataFormatError(MMLabError, ValueError):
    """A file on disk is malformed, truncated or not in the expected layout."""


class DatasetError(MMLabError):
    """A dataset is unknown, missing from disk, cannot be fetched (e.g. offline), or cannot be
    written where asked (the folder is a file or not empty, the disk is full)."""


class SignalError(MMLabError, ValueError):
    """A signal cannot be processed as asked (too short, wrong rate, all NaN, ...)."""


class NotebookError(MMLabError):
    """An exercise source or a submission notebook is malformed (markers, metadata)."""
