"""Field type checks for config dataclasses, so `PruneConfig("attention", "0.5")` fails where it is made.

    def __post_init__(self):
        check_field_types(self)

Checked: int (not bool), float (ints accepted), bool, str, None, unions, Literal and tuples
(`tuple[int, ...]` and fixed length). Nested dataclasses and other classes are left to their own
constructors. JSON gives lists where a field holds a tuple: convert before checking.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing

import numpy as np


@functools.cache
def _hints(cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def check_field_types(instance) -> None:
    """Raise TypeError naming the first field whose value does not match its annotation."""
    hints = _hints(type(instance))
    for field in dataclasses.fields(instance):
        value, hint = getattr(instance, field.name), hints[field.name]
        if not _matches(value, hint):
            raise TypeError(
                f"{type(instance).__name__}.{field.name} must be {_describe(hint)}, got {value!r} ({type(value).__name__})"
            )


def _matches(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(item, args[0]) for item in value)
        return len(value) == len(args) and all(_matches(item, arg) for item, arg in zip(value, args, strict=True))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool | np.bool_)
    if hint is int:
        return isinstance(value, int | np.integer) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _describe(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_describe(args[0])}"
        return f"a tuple ({', '.join(_describe(arg) for arg in args)})"
    if origin is typing.Literal:
        return f"one of {args}"
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def from_fields(cls: type, values: typing.Any, where: str):
    """cls(**values) for a stored dict, naming `where` (e.g. "mapper.json: vision") and the valid fields
    when values is not a dict, has unknown fields or misses required ones."""
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be an object of {cls.__name__} fields, got a {type(values).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; {cls.__name__} has {sorted(fields)}")
    required = [name for name, f in fields.items() if f.default is f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in values]
    if missing:
        raise ValueError(f"{where}: missing fields {missing}")
    return cls(**values)
