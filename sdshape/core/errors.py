"""The one exception type that means "the user asked for something invalid".

The CLI turns it into a one-line message and exit status 2; anything else that
escapes is a bug and keeps its traceback.
"""

from typing import Any


class UsageError(Exception):
    """Bad input from the user: names the bad value and the valid choices."""


def choices_error(what: str, value: object, valid: list[str] | tuple[str, ...]) -> UsageError:
    """Build the standard 'unknown X: valid choices are ...' message."""
    return UsageError(f"unknown {what} {value!r}; valid choices: {', '.join(valid)}")


def whole_number(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as a whole number in [minimum, maximum]; anything else (a bool, 2.5, "long") is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{name} must be at most {maximum}, got {value}")
    return value
