"""What a number given to sdshape may be: one rule per number, declared once with its flag.

A :class:`Bounds` is both argparse's ``type=`` (the flag's text becomes a number, or a one-line usage
error) and the check of a number that came another way (a shapes file, a catalog, options built in code):
``STEPS.check("--steps", value)``. Every bound refuses NaN and infinity, booleans, and text that is not a
number; a whole-number bound refuses 2.5; a fraction refuses a percentage and says what was meant.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from sdshape.core.errors import UsageError


def _shown(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


@dataclass(frozen=True)
class Bounds:
    """A number's kind and range; ``above``/``below``: the minimum/maximum itself is refused."""

    kind: type = float  # int: whole numbers only
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    below: bool = False
    noun: str = ""  # what the number is, said before the range: "a fraction"
    unit: str = ""  # said after the range: "seconds"
    multiple: int | None = None  # the value must be a multiple of this
    why: str = ""  # said after a refused multiple: "latents are 1/8 of the image"
    percent_hint: bool = False  # a value from 1 to 100 was meant as a percentage: say so

    def _low(self) -> str:
        return f"{'above' if self.above else 'at least'} {_shown(self.minimum)}"  # type: ignore[arg-type]

    def _high(self) -> str:
        return f"{'below' if self.below else 'at most'} {_shown(self.maximum)}"  # type: ignore[arg-type]

    def describe(self) -> str:
        """The range in words: 'between 0 and 3600 seconds', 'at least 0 and below 1', 'at least 1'."""
        if self.minimum is not None and self.maximum is not None and not self.above and not self.below:
            text = f"between {_shown(self.minimum)} and {_shown(self.maximum)}"
        else:
            ends = [self._low() if self.minimum is not None else "", self._high() if self.maximum is not None else ""]
            text = " and ".join(end for end in ends if end) or "finite"
        if self.multiple:
            text = f"a multiple of {self.multiple}, {text}"
        return f"{text} {self.unit}".rstrip()

    def _refuse(self, name: str, value: Any, rule: str, hint: str = "") -> UsageError:
        """The rule the value broke (the whole range for NaN and infinity), the value, and a hint."""
        whole = rule == self.describe()  # which says the multiple and the unit already
        multiple = f"a multiple of {self.multiple}, " if self.multiple and not whole else ""
        noun = f"{self.noun} " if self.noun else ""
        unit = f" {self.unit}" if self.unit and not whole else ""
        return UsageError(f"{name} must be {noun}{multiple}{rule}{unit}, got {_shown(value)}{hint}")

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it is of this kind and in range, else a :class:`UsageError` naming ``name``."""
        whole = self.kind is int
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise UsageError(f"{name} must be {'a whole number' if whole else 'a number'}, got {value!r}")
        if not whole and not math.isfinite(value):
            raise self._refuse(name, value, self.describe())
        if self.minimum is not None and (value <= self.minimum if self.above else value < self.minimum):
            raise self._refuse(name, value, self._low())
        if self.maximum is not None and (value >= self.maximum if self.below else value > self.maximum):
            hint = f"; did you mean {value / 100:g}?" if self.percent_hint and 1 <= value <= 100 else ""
            raise self._refuse(name, value, self._high(), hint)
        if self.multiple and value % self.multiple:
            why = f" ({self.why})" if self.why else ""
            raise UsageError(f"{name} must be a multiple of {self.multiple}{why}, got {value}")
        return value

    def __call__(self, text: str) -> Any:
        """argparse's ``type=``: the flag's text as a checked number (argparse names the flag)."""
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a whole number' if self.kind is int else 'a number'}, got {text!r}"
            ) from None
        try:
            return self.check("", value)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error).lstrip()) from None


def whole_number(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as a whole number in [minimum, maximum]; anything else (a bool, 2.5, "long") is refused."""
    return Bounds(int, minimum, maximum).check(name, value)


# compare's and history's thresholds and noise (flags and --thresholds files): fractions, 0.05 is 5%; 5 would
# be 500%, refused with a hint.
FRACTION = Bounds(float, 0, 1, below=True, noun="a fraction", percent_hint=True)
SIGNIFICANCE = Bounds(float, 0, 1, above=True, below=True, noun="a significance level")
