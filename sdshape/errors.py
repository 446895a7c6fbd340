"""The one exception type that means "the user asked for something invalid".

The CLI turns it into a one-line message and exit status 2; anything else that
escapes is a bug and keeps its traceback.
"""


class UsageError(Exception):
    """Bad input from the user: names the bad value and the valid choices."""


def choices_error(what: str, value: object, valid: list[str] | tuple[str, ...]) -> UsageError:
    """Build the standard 'unknown X: valid choices are ...' message."""
    return UsageError(f"unknown {what} {value!r}; valid choices: {', '.join(valid)}")
