"""The one exception type the library raises for bad input.

The CLI turns it into a one-line message and exit code 2; library users catch it
like any other exception. The message names the problem and, where there is one,
the fix.
"""


class BvvtokError(Exception):
    """Bad input or an environment problem the user can fix."""
