"""Exceptions that mean "the user gave us something wrong", not "the program is broken".

The CLI turns every :class:`UserError` into one line on stderr and exit code 2; any other
exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Base class for errors caused by the user's input (files, flags, configs)."""


class DatasetError(UserError):
    """A dataset file is missing, malformed, or fails its checksum."""


class ConfigError(UserError):
    """A configuration value is unknown, of the wrong type, or out of range."""


class RunError(UserError):
    """A run folder is missing, incomplete, locked by another process, or inconsistent."""


class ImageError(UserError):
    """An image file for prediction cannot be read or is unsafe to decode."""
