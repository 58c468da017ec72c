"""The course's errors. Each says what went wrong and what to do; the command line prints it as one line
(exit code 2) instead of a traceback.

Introduced in lesson 1.
"""
from __future__ import annotations


class CourseError(Exception):
    """Base of every error this package raises on purpose (bad input, missing data, a foreign checkpoint).

    Introduced in lesson 1.
    """


class ConfigError(CourseError, ValueError):
    """A task's YAML config that cannot be read or does not have the expected shape.

    Introduced in lesson 1.
    """


class CheckpointError(CourseError, ValueError):
    """A checkpoint that is missing, incomplete, corrupted, or of another model than the one asked for.

    Introduced in lesson 1.
    """


class DatasetUnavailableError(CourseError, RuntimeError):
    """Neither the real path nor the offline copy of a data set can be found.

    Introduced in lesson 1.
    """


class SamplesFileError(CourseError, ValueError):
    """A file that is not a samples file written by ``python -m course_utils sample``.

    Introduced in lesson 1.
    """


class TextEncoderUnavailableError(CourseError, RuntimeError):
    """A text encoder's weights cannot be loaded (offline, not cached, package missing).

    Introduced in lesson 3.
    """
