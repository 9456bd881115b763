"""Cron fields: Celery's syntax (``*/15``, ``8-14``, ``mon-fri``, lists) parsed into sets.

Every error is a ValueError that starts with the field's name, so a bad schedule in a
settings file points at the exact argument to fix; a malformed pattern (an empty item, a
missing step) is Celery's ``ParseException``, itself a ValueError.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DAY_NAMES",
    "FIELDS",
    "MONTH_NAMES",
    "CronField",
    "FieldSpec",
    "ParseException",
    "crontab_parser",
    "parse_field",
]

DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class FieldSpec:
    """The bounds and names of one crontab field."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    """Full names, the first one for ``low``; a name or its three-letter prefix is accepted."""

    def lookup(self, word: str) -> int | None:
        for offset, full in enumerate(self.names):
            lowered = full.lower()
            if word in (lowered, lowered[:3]):
                return self.low + offset
        return None


MINUTE = FieldSpec("minute", 0, 59)
HOUR = FieldSpec("hour", 0, 23)
DAY_OF_WEEK = FieldSpec("day_of_week", 0, 6, DAY_NAMES)
DAY_OF_MONTH = FieldSpec("day_of_month", 1, 31)
MONTH_OF_YEAR = FieldSpec("month_of_year", 1, 12, MONTH_NAMES)
FIELDS = {f.name: f for f in (MINUTE, HOUR, DAY_OF_WEEK, DAY_OF_MONTH, MONTH_OF_YEAR)}


class ParseException(ValueError):
    """A pattern that cannot be read (Celery's name for it; a ValueError here)."""


class CronField(frozenset[int]):
    """One parsed field: its values as a set (``crontab(minute="*/15").minute == {0, 15, 30,
    45}``, as in Celery) plus the original text, kept for display and storage."""

    spec: FieldSpec
    text: str

    def __new__(cls, spec: FieldSpec, text: str, values: Iterable[int]) -> CronField:
        field = super().__new__(cls, values)
        field.spec, field.text = spec, text
        return field

    def __reduce__(self) -> tuple[Any, ...]:
        return (CronField, (self.spec, self.text, frozenset(self)))

    def __repr__(self) -> str:
        return f"CronField({self.spec.name}={self.text!r})"

    @property
    def values(self) -> frozenset[int]:
        return frozenset(self)

    @property
    def every(self) -> bool:
        return len(self.values) == self.spec.high - self.spec.low + 1

    def sorted(self) -> list[int]:
        return sorted(self.values)


def normalize(value: object, field: str) -> str:
    """Ints, strings and iterables of ints (Celery accepts all three) as one string."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a number, a cron pattern or a list, not {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ParseException(f"{field}: empty pattern (use '*' for every value)")
        return text
    if isinstance(value, Iterable):
        items = list(value)
        if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            raise ValueError(f"{field}: a list must hold whole numbers, not {value!r}")
        return ",".join(str(i) for i in items)
    raise ValueError(f"{field}: expected a number, a cron pattern or a list, not {value!r}")


def parse_field(spec: FieldSpec, value: object) -> CronField:
    """Parse ``value`` for ``spec``; raises ValueError naming the field."""
    text = normalize(value, spec.name)
    values: set[int] = set()
    for part in text.lower().split(","):
        values.update(_parse_part(spec, part.strip(), text))
    return CronField(spec, text, frozenset(values))


def _parse_part(spec: FieldSpec, part: str, whole: str) -> list[int]:
    if not part:
        raise ParseException(f"{spec.name}: empty item in {whole!r}")
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ParseException(
                f"{spec.name}: the step in {part!r} must be a whole number above 0"
            )
        step = int(step_text)
    if base == "*":
        return list(range(spec.low, spec.high + 1, step))
    start_text, dash, end_text = base.partition("-")
    start = _value(spec, start_text, whole)
    end = start  # a single value; "a/n" runs to the top of the field
    if dash:
        end = _value(spec, end_text, whole)
    elif slash:
        end = spec.high
    if start <= end:
        span = list(range(start, end + 1))
    else:  # a range that wraps, such as fri-mon or 22-2
        span = list(range(start, spec.high + 1)) + list(range(spec.low, end + 1))
    return span[::step]


def _value(spec: FieldSpec, word: str, whole: str) -> int:
    word = word.strip()
    if not word:
        raise ParseException(f"{spec.name}: a range in {whole!r} lacks a number (no negatives)")
    if word.isdigit():
        number = int(word)
    else:
        found = spec.lookup(word)
        if found is None:
            hint = f" or a name such as {spec.names[1][:3].lower()}" if spec.names else ""
            raise ValueError(
                f"{spec.name}: {word!r} in {whole!r} is not a number from "
                f"{spec.low} to {spec.high}{hint}"
            )
        return found
    if not spec.low <= number <= spec.high:
        raise ValueError(
            f"{spec.name}: {number} in {whole!r} is out of range ({spec.low}-{spec.high})"
            + ("; Sunday is 0 (or 'sun'), as in Celery" if spec is DAY_OF_WEEK else "")
        )
    return number


class crontab_parser:
    """Celery's parser for one cron field: ``crontab_parser(60).parse("*/15")`` is
    ``{0, 15, 30, 45}``; ``crontab_parser(31, 1)`` reads days of the month.

    ``max_`` counts the values and ``min_`` is the lowest, as in Celery. The five crontab
    fields' ranges also accept their names (``crontab_parser(7).parse("mon-fri")``).
    """

    ParseException = ParseException

    def __init__(self, max_: int = 60, min_: int = 0) -> None:
        if max_ < 1:
            raise ValueError(f"max_: the number of values must be at least 1, not {max_!r}")
        high = min_ + max_ - 1
        known = [f for f in FIELDS.values() if (f.low, f.high) == (min_, high)]
        self.max_, self.min_ = max_, min_
        self.spec = known[0] if known else FieldSpec("value", min_, high)

    def parse(self, spec: str) -> set[int]:
        return set(parse_field(self.spec, spec).values)


# -- plain English ----------------------------------------------------------------------


def join_words(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def runs(values: list[int]) -> list[tuple[int, int]]:
    """Sorted values as (first, last) runs of consecutive numbers."""
    found: list[tuple[int, int]] = []
    for value in values:
        if found and value == found[-1][1] + 1:
            found[-1] = (found[-1][0], value)
        else:
            found.append((value, value))
    return found


def step_of(field: CronField) -> int | None:
    """The step of a field that is ``*/n`` in effect (starts at the low bound, more than one)."""
    values = field.sorted()
    if len(values) < 2 or values[0] != field.spec.low:
        return None
    step = values[1] - values[0]
    if step < 2 or values != list(range(field.spec.low, field.spec.high + 1, step)):
        return None
    return step


def list_words(field: CronField) -> str:
    """``1 through 5 and 10``, ``Monday through Friday``: ranges of three or more collapse."""
    words: list[str] = []
    for first, last in runs(field.sorted()):
        if last - first >= 2:
            words.append(f"{_name(field, first)} through {_name(field, last)}")
        else:
            words.extend(_name(field, v) for v in range(first, last + 1))
    return join_words(words)


def _name(field: CronField, value: int) -> str:
    if field.spec.names:
        return field.spec.names[value - field.spec.low]
    return str(value)
