"""The one base class for failures a user can act on: a bad argument, a dataset that is not one, a
full disk, a read-only directory. The CLI prints such an error as one `error:` line and exits 1;
anything else is a bug and keeps its traceback. A leaf module: every layer may import it."""

from __future__ import annotations


class ForYouError(Exception):
    """A failure the user can act on; its message is one line that says what and how to fix it."""
