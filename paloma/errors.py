"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""


class PalomaError(Exception):
    """A user-facing error: bad input, a missing file, an unsupported option.

    The message names the file, line or field at fault; the CLI prints it on one line and exits 2.
    """
