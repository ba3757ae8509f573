"""The one exception type a user can cause; the CLI turns it into a one-line message."""


class LtbenchError(Exception):
    """A problem with the user's input or environment (bad option, missing data, damaged file)."""
