"""The exceptions that end a command in one line: "the user asked for something invalid", and "an output
could not be written".

The CLI turns a :class:`UsageError` into a one-line message and exit status 2 (a :class:`WriteError`:
one line and exit status 1); anything else that escapes is a bug and keeps its
traceback. Numbers are checked by :mod:`sdshape.core.bounds`.
"""


class UsageError(Exception):
    """Bad input from the user: names the bad value and the valid choices."""


class WriteError(Exception):
    """An output file that could not be written once the work was done (the input was fine): the CLI
    prints one line naming the file and why, and exits 1."""


def choices_error(what: str, value: object, valid: list[str] | tuple[str, ...]) -> UsageError:
    """Build the standard 'unknown X: valid choices are ...' message."""
    return UsageError(f"unknown {what} {value!r}; valid choices: {', '.join(valid)}")
