"""Errors a user can act on.

Every error raised for bad input is a :class:`HsrdiffError` whose message names the file, key or
shape at fault and what was expected; the CLI prints it without a traceback.
"""


class HsrdiffError(Exception):
    """Bad input or an unmet precondition, with a message meant for the user."""


class ConfigError(HsrdiffError):
    """The configuration does not match the schema or is inconsistent."""


class DataError(HsrdiffError):
    """An input file is missing, unreadable or holds values or shapes that cannot be used."""


class DownloadError(HsrdiffError):
    """A file could not be downloaded or failed its checks."""
