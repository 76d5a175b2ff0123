"""One source for every option: a config dataclass field carries its flag, help, choices and check.

    epochs: int = option(20, help="Student (distillation) epochs.", check=at_least(0))

The CLI's click options, the preset table, config-file reading and validation are all derived
from these fields (cli_options.py, config_file.py, RunConfig.validate). A field without `option`
metadata is configurable from a config file only. Method options live in each method's own
dataclass (methods/*.py), whose flags are prefixed with the method's name (`--lfcc-weight`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lfcc_pipeline.core.errors import ConfigError

Check = Callable[[str, Any], None]  # (flag, value) -> None, raises ConfigError


@dataclass(frozen=True)
class Opt:
    """What the command line needs to know about one config field."""

    help: str = ""
    flag: str | None = None  # None: "--" + the field name with dashes (prefixed for method options)
    choices: tuple[str, ...] | None = None
    check: Check | None = None
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # str -> value, for list-valued options ("1,2,4")
    show_default: bool = True
    negatable: bool = False  # a boolean with --x/--no-x
    is_flag: bool = False  # a boolean that is only switched on (--strict)
    multiple: bool = False  # a repeatable option (--target)
    dest: str | None = None  # the click parameter name, where it is not the flag's
    flag_value: str | None = None  # an option whose value may be left out (--mlflow [URI]): this value then


def option(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **opt: Any) -> Any:
    """A dataclass field whose metadata holds an Opt."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"option": Opt(**opt)})


def opt_of(f: dataclasses.Field) -> Opt | None:
    return f.metadata.get("option")


def flag_of(f: dataclasses.Field, prefix: str = "") -> str:
    o = opt_of(f)
    if o is not None and o.flag:
        return o.flag
    return "--" + (f"{prefix}-" if prefix else "") + f.name.replace("_", "-")


def dest_of(f: dataclasses.Field, prefix: str = "") -> str:
    o = opt_of(f)
    if o is not None and o.dest:
        return o.dest
    return flag_of(f, prefix).lstrip("-").replace("-", "_")


def walk(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dataclasses.Field, Any]]:
    """(path, field, value) for every leaf field of a (nested) config dataclass instance; the values of
    a field marked `mapping` (name -> options dataclass) are walked under their name."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("mapping"):
            for name, sub in value:
                yield from walk(sub, (*path, f.name, name))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            yield from walk(value, (*path, f.name))
        else:
            yield (*path, f.name), f, value


def prefix_of(path: tuple[str, ...]) -> str:
    """The flag prefix of a field at `path`: a method's name for method options, none otherwise."""
    return path[-2] if len(path) >= 3 and path[-3] == "methods" else ""


def validate_fields(obj: Any) -> None:
    """Run every field's choices and check on its value."""
    for path, f, value in walk(obj):
        check_value(f, flag_of(f, prefix_of(path)), value)


def check_value(f: dataclasses.Field, flag: str, value: Any) -> None:
    """One field's choices and check (None, the 'not set' of optional fields, always passes)."""
    o = opt_of(f)
    if o is None or value is None:
        return
    if o.choices is not None:
        for v in value if o.multiple else (value,):
            if v not in o.choices:
                raise ConfigError(f"unknown {flag} {v!r}", f"choose one of {', '.join(o.choices)}")
    if o.check is not None:
        o.check(flag, value)


def get_at(obj: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        obj = dict(obj)[step] if isinstance(obj, tuple) else getattr(obj, step)
    return obj


def replace_at(obj: Any, path: tuple[str, ...], value: Any) -> Any:
    """`obj` with the field at `path` set to `value` (frozen dataclasses all the way down)."""
    head, rest = path[0], path[1:]
    f = next(f for f in dataclasses.fields(obj) if f.name == head)
    if not rest:
        return dataclasses.replace(obj, **{head: value})
    current = getattr(obj, head)
    if f.metadata.get("mapping"):
        items = dict(current)
        items[rest[0]] = replace_at(items[rest[0]], rest[1:], value) if rest[1:] else value
        return dataclasses.replace(obj, **{head: tuple(items.items())})
    return dataclasses.replace(obj, **{head: replace_at(current, rest, value)})


# --- checks -------------------------------------------------------------------------------------


def at_least(low: float, hint: str | None = None, strict: bool = False) -> Check:
    """value >= low (or > low with strict); the message names the flag and the value."""

    def check(flag: str, value: Any) -> None:
        if value < low or (strict and value == low):
            raise ConfigError(f"{flag} must be {'>' if strict else '>='} {low:g}, got {value}", hint)

    return check


def positive(flag: str, value: Any) -> None:
    if value <= 0:
        raise ConfigError(f"{flag} must be > 0, got {value}")


def non_negative(flag: str, value: Any) -> None:
    if value < 0:
        raise ConfigError(f"{flag} must be >= 0, got {value}")


def in_range(
    low: float, high: float, low_open: bool = False, high_open: bool = False, hint: str | None = None
) -> Check:
    """low <= value <= high, with either end open; written as [0, 1) in the message."""

    def check(flag: str, value: Any) -> None:
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if below or above:
            span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise ConfigError(f"{flag} must be in {span}, got {value}", hint)

    return check


def each(check: Check, hint: str | None = None) -> Check:
    """A check on every element of a non-empty tuple."""

    def run(flag: str, value: Any) -> None:
        if not value:
            raise ConfigError(f"{flag} must not be empty", hint)
        for v in value:
            check(flag, v)

    return run


# --- list-valued options: "1,2,4" on the command line, a YAML list in a config file ---------------


def int_list(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"{value!r} is not a comma-separated list of integers", "e.g. 1,2,4") from None


def tap_pairs(value: str) -> tuple[tuple[int, int], ...]:
    try:
        pairs = [p.split(":") for p in value.replace(" ", "").split(",")]
        return tuple((int(t), int(s)) for t, s in pairs)
    except ValueError:
        raise ConfigError(f"{value!r} is not a list of TEACHER:STUDENT tap indices", "e.g. 3:1,7:2") from None


def tap_pair(value: str) -> tuple[int, int]:
    pairs = tap_pairs(value)
    if len(pairs) != 1:
        raise ConfigError(f"{value!r} is not one TEACHER:STUDENT pair of tap indices", "e.g. 2:3")
    return pairs[0]


def as_text(value: Any) -> str:
    """The command-line spelling of a list-valued option's value: (1, 2, 4) -> "1,2,4"; ((3, 1),) -> "3:1"."""
    if isinstance(value, tuple):
        return ",".join(":".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in value)
    return str(value)
